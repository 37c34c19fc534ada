# One image for every tablebeat role; docker-compose.yml picks the command
# (tablebeat db upgrade | celery -A workers beat | worker | flower | tablebeat api).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    APP_ENV=online

WORKDIR /app

# Dependencies first, so editing the code does not reinstall them: install the project's
# dependency list from pyproject.toml alone, then the code on top.
COPY pyproject.toml README.md ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" \
        > /tmp/requirements.txt \
    && pip install -r /tmp/requirements.txt \
    && rm /tmp/requirements.txt

COPY celeryconfig.py ./
COPY conf ./conf
COPY protocol ./protocol
COPY telemetry ./telemetry
COPY models ./models
COPY alerts ./alerts
COPY scheduler ./scheduler
COPY workers ./workers
COPY service ./service
COPY cli ./cli
COPY api ./api
RUN pip install --no-deps . \
    && useradd --system --uid 10001 --home-dir /app --shell /usr/sbin/nologin tablebeat

# Celery warns against running a worker as root; every role runs unprivileged.
USER tablebeat

EXPOSE 5555 8000
CMD ["celery", "-A", "workers", "worker", "-l", "info"]
