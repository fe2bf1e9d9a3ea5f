from __future__ import annotations

# API tokens are django-rest-knox digests now (manage.py create_api_token USER); the class
# lives in cdcrecon.api.tokens and is re-exported here for older imports.
from cdcrecon.api.tokens import BearerTokenAuthentication

__all__ = ["BearerTokenAuthentication"]
