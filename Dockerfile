# Facial emotion recognition service: FastAPI + a small Keras CNN on CPU-only TensorFlow.
#
#   docker build -t emotion-service:0.1.0 .
#   docker run --rm -p 8000:8000 emotion-service:0.1.0      # http://localhost:8000/docs
#
# Stages: `deps` installs the runtime dependencies of pyproject.toml ([project.dependencies] only: no
# train/dev extras) into a virtual environment; `source` byte-compiles the `app` package; the runtime
# stage copies the venv, the package, the shipped model and the health probe, and nothing else: no
# compiler, no pip cache, no tests, no training code. TensorFlow is `tensorflow-cpu==2.21.0` (the
# CPU-only wheel, picked by the pyproject marker on linux/x86_64); it is ~1 GB of the ~1.6 GB image.

# ---------------------------------------------------------------------------------------------------
FROM python:3.11-slim AS deps

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /build
# The dependency list alone, so that editing app/ or the model does not reinstall TensorFlow.
COPY pyproject.toml ./
# pip byte-compiles as it installs (start-up then needs no compiling, even on a read-only filesystem).
# Then: C headers (TensorFlow's are ~40 MB) serve only to build extensions, and pip is not needed at
# run time; both are removed in this same layer, so they never reach the copied venv.
RUN python -m venv /opt/venv \
    && python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" \
       > requirements.txt \
    && /opt/venv/bin/pip install -r requirements.txt \
    && rm -rf /opt/venv/lib/python3.11/site-packages/tensorflow/include \
    && /opt/venv/bin/python -m pip uninstall --yes pip

# ---------------------------------------------------------------------------------------------------
FROM python:3.11-slim AS source

COPY app/ /app/app/
# The shipped models (tracked in git) are baked in and served side by side (EMOTION_MODELS unset: every
# /app/models/*.h5); mount another and point EMOTION_MODEL_PATH (or EMOTION_MODELS) at it.
COPY models/emotion_cnn.h5 models/emotion_cnn.json /app/models/
COPY models/emotion_cnn_neutral.h5 models/emotion_cnn_neutral.json /app/models/
COPY deploy/healthcheck.py /app/healthcheck.py
# unchecked-hash: the .pyc files are used whatever the files' timestamps become in the image.
RUN python -m compileall -q --invalidation-mode unchecked-hash /app/app

# ---------------------------------------------------------------------------------------------------
FROM python:3.11-slim AS runtime

LABEL org.opencontainers.image.title="emotion-service" \
      org.opencontainers.image.description="Facial emotion recognition (seven CK+ emotions), FastAPI on CPU TensorFlow" \
      org.opencontainers.image.licenses="MIT"

ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp \
    KERAS_HOME=/tmp/.keras \
    TF_CPP_MIN_LOG_LEVEL=2 \
    EMOTION_MODEL_PATH=/app/models/emotion_cnn.h5 \
    EMOTION_HOST=0.0.0.0 \
    EMOTION_PORT=8000 \
    EMOTION_LOG_LEVEL=info

# A fixed, unprivileged uid/gid (>10000, so Kubernetes' runAsNonRoot can check it by number).
RUN groupadd --system --gid 10001 app \
    && useradd --system --uid 10001 --gid app --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin app

WORKDIR /app
EXPOSE 8000
# Healthy = the model is loaded and warm (GET /ready answers 200); no curl in the slim image.
HEALTHCHECK --interval=10s --timeout=3s --start-period=60s --retries=3 CMD ["python", "/app/healthcheck.py"]
# EMOTION_WORKERS server processes share the port (default: one per core of the container's CPU limit;
# the Kubernetes manifest sets 1 per pod). The model runs on LiteRT (EMOTION_MODEL_RUNTIME): converted
# from the .h5 at start-up, in a child process, into EMOTION_MODEL_CACHE_DIR (default under /tmp).
CMD ["python", "-m", "app"]
USER 10001:10001

# The large copy comes last on purpose: with a copying storage driver (podman's vfs, as in CI) every
# instruction after it would duplicate the 1.5 GB filesystem. The files stay owned by root: the
# service can read its code and model but not change them.
COPY --from=source /app /app
COPY --from=deps /opt/venv /opt/venv
