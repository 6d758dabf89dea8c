# The liftwatch image: one image, every process (`docker run liftwatch <command>`).
FROM python:3.11-slim-bookworm

# fonts-wqy-microhei: TrueType CJK font embedded in the Chinese PDF reports.
# tzdata: the site time zone (LIFTWATCH_SITE_TIMEZONE, Asia/Shanghai) for zoneinfo.
RUN apt-get update \
    && apt-get install -y --no-install-recommends fonts-wqy-microhei tzdata \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /app
COPY pyproject.toml uv.lock requirements-uv.txt README.md ./
COPY core core
COPY ingest ingest
COPY rules rules
COPY alerts alerts
COPY api api
COPY simulators simulators
COPY dashboards dashboards
COPY reports reports
COPY registry registry
COPY launcher launcher
# Exactly the versions of uv.lock, as `python3 dev.py demo` installs them (docs/dependencies.md):
# the uv that dev.py pins (hash-checked, then deleted) makes /opt/liftwatch, a venv of this image's
# Python with liftwatch built as a wheel (no dev extras).
ENV PATH=/opt/liftwatch/bin:$PATH
RUN pip install --no-cache-dir --require-hashes --only-binary=:all: --no-deps --target /tmp/uv -r requirements-uv.txt \
    && UV_PROJECT_ENVIRONMENT=/opt/liftwatch UV_PYTHON=/usr/local/bin/python3 UV_PYTHON_DOWNLOADS=never \
       /tmp/uv/bin/uv sync --locked --no-editable --no-cache \
    && rm -rf /tmp/uv \
    && useradd --system --uid 10001 liftwatch

USER liftwatch
ENV PYTHONUNBUFFERED=1
EXPOSE 8080 9100
ENTRYPOINT ["liftwatch"]
CMD ["--help"]
