# The API and the worker (one image, two commands). Build: docker build -t quantum-campaigns .
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /app
COPY pyproject.toml README.md requirements/runtime.lock ./
# The locked versions first (a layer that changes only with the lock), then the project.
# The embedded servers are an extra this image leaves out: it talks to real services.
RUN pip install --no-cache-dir -r runtime.lock
COPY campaigns ./campaigns
RUN pip install --no-cache-dir --no-deps . && useradd --system --uid 10001 campaigns \
    && mkdir -p /var/lib/campaigns && chown campaigns /var/lib/campaigns
USER campaigns
# Shared by the API and worker containers through a volume (the webhook secret key file,
# when WEBHOOK_SECRET_KEYS is not set).
ENV DATA_DIR=/var/lib/campaigns

EXPOSE 8000
CMD ["campaigns", "api", "--host", "0.0.0.0", "--port", "8000"]
