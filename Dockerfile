# cdcrecon's image for docker-compose.yml: the web app (gunicorn on 8080), the Celery worker
# and beat all run from it, with the pinned versions of requirements.lock.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONPATH=/app \
    DJANGO_SETTINGS_MODULE=cdcrecon.settings

WORKDIR /app

# Dependencies and the packages, pinned by the lock file (constraints).
COPY pyproject.toml requirements.lock README.md ./
COPY cdcrecon ./cdcrecon
COPY reconciliation ./reconciliation
COPY gdpr ./gdpr
RUN pip install -c requirements.lock .

# manage.py and the admin templates are not part of the installed packages; PYTHONPATH=/app
# makes the source tree (BASE_DIR=/app, with templates/) the code that runs.
COPY manage.py ./
COPY templates ./templates

RUN useradd --system --uid 10001 --home-dir /app --shell /usr/sbin/nologin cdcrecon \
    && python manage.py collectstatic --noinput -v 0 \
    && chown -R cdcrecon:cdcrecon /app/.local

USER cdcrecon
EXPOSE 8080
CMD ["gunicorn", "cdcrecon.wsgi:application", "--bind=0.0.0.0:8080", "--workers=3", "--access-logfile=-"]
