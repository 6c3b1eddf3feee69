# Nidaan's container image: multi-stage, slim, runs as an unprivileged user.
#   docker build -t nidaan .
#   docker run --env-file nidaan.env -p 8000:8000 nidaan serve --role api --host 0.0.0.0
# The same image runs every role: serve, worker, interfaces, relay, db upgrade, backup.

# ---- 1. the staff web app (SvelteKit) ----------------------------------------------------
FROM node:20-bookworm-slim AS web
WORKDIR /build/web
COPY web/package.json web/package-lock.json ./
RUN npm ci --no-audit --no-fund --loglevel=error
COPY web/ ./
RUN npm run build

# ---- 2. the Python wheel and its dependencies, pinned by constraints.txt -----------------
FROM python:3.11-slim-bookworm AS build
WORKDIR /build
RUN python -m venv /opt/nidaan
COPY pyproject.toml constraints.txt README.md ./
COPY src/ src/
COPY --from=web /build/src/nidaan/webui/dist/ src/nidaan/webui/dist/
RUN /opt/nidaan/bin/pip install --no-cache-dir --upgrade pip \
 && /opt/nidaan/bin/pip install --no-cache-dir -c constraints.txt .

# ---- 3. the runtime image -----------------------------------------------------------------
FROM python:3.11-slim-bookworm
# PDF reports (Pango, HarfBuzz subsetter), upload typing (libmagic), backups (pg_dump 15+).
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      libpango-1.0-0 libpangoft2-1.0-0 libharfbuzz-subset0 libmagic1 postgresql-client \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home-dir /var/lib/nidaan --create-home nidaan
COPY --from=build /opt/nidaan /opt/nidaan
ENV PATH=/opt/nidaan/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    NIDAAN_DATA_DIR=/var/lib/nidaan \
    NIDAAN_HOST=0.0.0.0 \
    NIDAAN_METRICS_HOST=0.0.0.0
USER nidaan
WORKDIR /var/lib/nidaan
EXPOSE 8000 9100
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
  CMD python -c "import urllib.request,sys; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4)" || exit 1
ENTRYPOINT ["nidaan"]
CMD ["serve", "--role", "api"]
