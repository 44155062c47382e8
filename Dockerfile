# Node 24 runs the .ts sources through its built-in type stripping: no build stage.
FROM node:24-bookworm-slim

ENV NODE_ENV=production
# V8 would let a worker's old generation grow to ~300 MB under load (live heap ~33 MB); these keep
# it under 150 MB, and 8 MB semi-spaces (not 2) keep GC from taking a third of its CPU. Two malloc
# arenas instead of one per thread save ~10 MB more. `npm run bench` runs its workers with the same
# settings (bench/workers.ts; test/bench.test.ts keeps them equal).
ENV NODE_OPTIONS="--max-old-space-size=128 --max-semi-space-size=8"
ENV MALLOC_ARENA_MAX="2"
WORKDIR /app

# Lockfile first, so code edits reuse the dependency layer.
# --omit=dev leaves out embedded-postgres (a dev dependency and optional peer: the container always
# gets DATABASE_URL) and --omit=optional pg-cloudflare.
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --omit=optional && npm cache clean --force

# .dockerignore decides what comes in (bin/ may not exist yet, so no explicit list here).
COPY . .

# Files stay root-owned: the service can read its code but not rewrite it.
USER node

# /healthz, /readyz, /metrics (BILLING_HTTP_PORT). On every interface of the container, so that a
# scraper or an orchestrator's probes reach them; the worker alone binds loopback only. Publishing
# the port (or not) decides who else reaches them.
ENV BILLING_HTTP_HOST="0.0.0.0"
EXPOSE 9090

ENTRYPOINT ["node", "src/cli/main.ts"]
CMD ["worker"]
