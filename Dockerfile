# The bot image: python:3.11-slim (Debian trixie, whose postgresql-client 17 can dump and
# restore the postgres:16 server of docker-compose.yml), installed from the pinned lock.
FROM python:3.11-slim-trixie

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    DATA_DIR=/data \
    LOG_FORMAT=json

# pg_dump / pg_restore for `python -m bot backup` and `restore` on PostgreSQL
RUN apt-get update \
    && apt-get install -y --no-install-recommends postgresql-client \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /app
# Dependencies first (a layer that changes only with the lock), then the code.
COPY pyproject.toml constraints.txt README.md ./
RUN python -c "import tomllib; print(*tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies'], sep='\n')" > /tmp/requirements.txt \
    && pip install -c constraints.txt -r /tmp/requirements.txt
COPY bot ./bot
COPY handlers ./handlers
COPY forms ./forms
COPY scheduler ./scheduler
COPY exports ./exports
COPY storage ./storage
COPY roadmaps ./roadmaps
RUN pip install -c constraints.txt --no-deps . \
    && useradd --create-home --uid 1000 shnor \
    && mkdir -p /data /backups \
    && chown shnor:shnor /data /backups

USER shnor
VOLUME ["/data"]
EXPOSE 8080
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
    CMD python -c "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:8080/health', timeout=4).status != 200)"
CMD ["python", "-m", "bot", "run"]
