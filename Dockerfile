# The dashboard in a container, for a class or a lab: no torch (the Live run page then shows the stored
# GPU runs; build with --build-arg LIVE=1 on a GPU host to run the live decoder there).
#   docker build -t kvdash . && docker run -p 8501:8501 kvdash
# One process serves a seminar; for a lecture hall, deploy/compose.yaml runs this image as the class server
# (a process per core behind nginx, which is installed here for it).
FROM python:3.11-slim
ARG LIVE=
WORKDIR /app
RUN apt-get update && apt-get install -y --no-install-recommends nginx && rm -rf /var/lib/apt/lists/*
COPY requirements.txt requirements-live.txt ./
RUN pip install --no-cache-dir -r requirements.txt \
    && if [ -n "$LIVE" ]; then pip install --no-cache-dir -r requirements-live.txt; fi
COPY . .
EXPOSE 8501
HEALTHCHECK CMD python -c "import urllib.request; urllib.request.urlopen('http://localhost:8501/_stcore/health')"
CMD ["streamlit", "run", "app.py", "--server.address=0.0.0.0", "--server.port=8501", "--server.headless=true"]
