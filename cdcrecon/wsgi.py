from __future__ import annotations

import gc
import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "cdcrecon.settings")
application = get_wsgi_application()

# What start-up loaded lives as long as the process.  Frozen, it is left out of the cyclic
# garbage collector's full passes, which otherwise scan it all again and stall a request for
# ~200 ms every few dozen large responses (the list API's p95; see bench/api_latency.py).
gc.freeze()
