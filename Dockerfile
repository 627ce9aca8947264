# One image for every photostream service; the compose file picks the subcommand.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1

RUN useradd --system --create-home --uid 10001 photostream
WORKDIR /app

COPY pyproject.toml README.md ./
COPY photostream ./photostream
COPY producers ./producers
COPY streams ./streams
COPY sinks ./sinks
COPY schemas ./schemas
RUN pip install .

USER photostream
ENTRYPOINT ["photostream"]
CMD ["--help"]
