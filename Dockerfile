# The chat service. CI cannot build images, so tests/container_test.ts checks that CMD is
# exactly the `deno task start` line of deno.json, and tests/process_test.ts runs that line.
FROM denoland/deno:2.9.6

WORKDIR /app
RUN chown deno:deno /app
# The image's unprivileged user, from here on: building and running.
USER deno

# Dependencies in their own layer, rebuilt only when deno.json or deno.lock change. They go
# to ./node_modules, a path the permissions below can name (npm packages read their own
# .proto files at start).
COPY --chown=deno:deno deno.json deno.lock ./
RUN deno install --frozen --node-modules-dir=auto

COPY --chown=deno:deno . .
# The module graph, cached at build time: the container fetches nothing when it starts.
RUN deno cache --frozen --node-modules-dir=auto main.ts observability/healthcheck.ts

ENV HOST=0.0.0.0 PORT=8000 GRPC_PORT=50051
# HTTP (WebSocket, media, /healthz, /readyz, /metrics) and gRPC (admin plane, grpc.health.v1)
EXPOSE 8000 50051

# Liveness only; readiness (/readyz, grpc.health.v1) is for the load balancer.
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \
  CMD ["deno", "run", "--allow-net", "--allow-env=HOST,PORT", "observability/healthcheck.ts"]

# Network: the hosts of DATABASE_URL, NATS_URL and JWT_JWKS_URL are known only at run time.
# Environment: exactly the settings of config.ts; libraries asking for anything else read
# nothing (--ignore-env). Files: the migrations, the admin proto, the npm packages' own
# files, TLS files mounted under /run/secrets, and /dev/null (opened until the open-file limit
# refuses, to size WS_MAX_SOCKETS: open_files.ts). System: the uid (node:fs access checks).
# Nothing may be written, run, or loaded as native code. SIGTERM reaches deno directly.
CMD ["deno", "run", "--node-modules-dir=auto", "--allow-net", "--allow-env=PORT,HOST,GRPC_PORT,GRPC_ENABLED,GRPC_ADMIN_TOKEN,GRPC_TLS_CERT,GRPC_TLS_KEY,GRPC_TLS_RELOAD_SECONDS,GRPC_WATCH_BUFFER,GRPC_MAX_WATCH_STREAMS,DATABASE_URL,DATABASE_POOL_SIZE,DATA_DIR,NATS_URL,NATS_SUBJECT_PREFIX,MEDIA_BACKEND,MEDIA_NATS_BUCKET,MEDIA_MAX_IMAGE_BYTES,MEDIA_MAX_AUDIO_BYTES,MEDIA_MAX_VIDEO_BYTES,MEDIA_RATE_PER_SECOND,MEDIA_RATE_BURST,MEDIA_MAX_UPLOADS_PER_USER,MEDIA_MAX_DOWNLOADS_PER_USER,MEDIA_UPLOAD_IDLE_SECONDS,MEDIA_DOWNLOAD_IDLE_SECONDS,MEDIA_UPLOAD_MIN_BYTES_PER_SECOND,MEDIA_UNSENT_RETENTION_HOURS,JWT_SECRET,JWT_PUBLIC_KEY,JWT_JWKS_URL,JWT_ISSUER,JWT_AUDIENCE,JWT_USER_CLAIM,ALLOWED_ORIGINS,LOG_LEVEL,DEMO_PAGE,MAX_FRAME_BYTES,WS_IDLE_TIMEOUT_SECONDS,WS_RATE_PER_SECOND,WS_RATE_BURST,WS_FLOOD_LIMIT,WS_MAX_SOCKETS,WS_MAX_SOCKETS_PER_USER,WS_MAX_BUFFERED_BYTES,SHUTDOWN_TIMEOUT,FEED_SWEEP_SECONDS", "--ignore-env", "--allow-read=db/migrations,proto,node_modules,/run/secrets,/dev/null", "--allow-sys=uid", "main.ts"]
