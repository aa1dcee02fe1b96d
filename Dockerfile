# syntax=docker/dockerfile:1
# Telegram Bot Gateway: one image for every node role (the SERVICES env var picks the role).
#   docker build -t telegram-bot-gateway .

# --- build: compile TypeScript and the native modules (argon2, sqlite3), then drop dev dependencies ---
FROM node:20-bookworm-slim AS build
WORKDIR /app
RUN apt-get update \
	&& apt-get install -y --no-install-recommends python3 make g++ \
	&& rm -rf /var/lib/apt/lists/*
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY . .
RUN npm run build \
	&& npm prune --omit=dev --no-audit --no-fund

# --- runtime: only what the running process needs, as the unprivileged node user ---
FROM node:20-bookworm-slim AS runtime
ENV NODE_ENV=production
# libuv's pool runs SQLite's statements, argon2 checks and hashes, and system lookups of webhook
# hosts (2 at most each): 8 threads leave the database room when the others are busy (default 4).
ENV UV_THREADPOOL_SIZE=8
WORKDIR /app
# Code and dependencies stay owned by root (read-only for the process); only data/ is writable.
COPY --from=build /app/package.json ./package.json
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY --from=build /app/proto ./proto
# `npm run cli|migrate|repl` go through bin/run.js, which runs the compiled dist/bin/<name>.js here.
COPY --from=build /app/bin/run.js ./bin/run.js
RUN mkdir -p /app/data && chown node:node /app/data
USER node
EXPOSE 3000 50051
# Liveness only (process alive); orchestrators probe /ready themselves for readiness.
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
	CMD ["node", "-e", "fetch('http://127.0.0.1:' + (process.env.PORT || 3000) + '/health', { signal: AbortSignal.timeout(4000) }).then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
# node directly, never npm start: npm does not forward SIGTERM, so the graceful drain would never run.
# A 64 MB young generation (docs/operations.md): fewer, shorter collections under load.
CMD ["node", "--max-semi-space-size=64", "--enable-source-maps", "dist/bin/gateway.js"]
