# The liftwatch image: one image, every process (`docker run liftwatch <command>`).
FROM python:3.11-slim-bookworm

# fonts-wqy-microhei: TrueType CJK font embedded in the Chinese PDF reports.
# tzdata: the site time zone (LIFTWATCH_SITE_TIMEZONE, Asia/Shanghai) for zoneinfo.
RUN apt-get update \
    && apt-get install -y --no-install-recommends fonts-wqy-microhei tzdata \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /app
COPY pyproject.toml README.md ./
COPY core core
COPY ingest ingest
COPY rules rules
COPY alerts alerts
COPY api api
COPY simulators simulators
COPY dashboards dashboards
COPY reports reports
RUN pip install --no-cache-dir . && useradd --system --uid 10001 liftwatch

USER liftwatch
ENV PYTHONUNBUFFERED=1
EXPOSE 8080 9100
ENTRYPOINT ["liftwatch"]
CMD ["--help"]
