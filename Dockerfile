# Production image: same code path as `make run`; set DATABASE_URL (Supabase) and provider keys.
# Without DATABASE_URL it runs the embedded Postgres inside the container, its data in the
# /app/.data volume. It runs as an unprivileged user (uid 10001): Postgres refuses to run as
# root, and a process reachable from the network should not hold root in its container.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    UV_PYTHON_DOWNLOADS=never \
    UV_PROJECT_ENVIRONMENT=/app/.venv \
    UV_COMPILE_BYTECODE=1 \
    HOST=0.0.0.0 \
    PORT=8000 \
    DATA_DIR=/app/.data

RUN pip install --no-cache-dir "uv==0.13.9" \
    && groupadd --system --gid 10001 chatbot \
    && useradd --system --uid 10001 --gid chatbot --create-home --home-dir /home/chatbot chatbot
WORKDIR /app

# Dependencies first, so code changes do not reinstall them.
COPY pyproject.toml uv.lock ./
RUN uv sync --frozen --no-dev --no-install-project

COPY . .
RUN uv sync --frozen --no-dev \
    && mkdir -p /app/.data \
    && chown chatbot:chatbot /app/.data

# The embedded database and anything else the app writes. A new named volume starts as a copy
# of this directory, so it belongs to the app's user.
VOLUME ["/app/.data"]
USER 10001:10001

EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=120s \
    CMD ["/app/.venv/bin/python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/health' % os.environ.get('PORT', '8000'), timeout=4)"]
CMD ["/app/.venv/bin/chatbot", "serve"]
