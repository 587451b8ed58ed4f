# syntax=docker/dockerfile:1
# Loft server image.
#   docker build -t loft .
#   docker run -p 8080:8080 loft serve --mode monolithic   # embedded: SQLite + local storage in /var/lib/loft
# Production (infra/): `serve --mode api` behind a load balancer, `serve --mode worker` for GC,
# configured entirely by LOFT_* environment variables (docs/config.md).

# Node 24 is the LTS line CI tests (package.json engines: >= 22; Node 20 is end-of-life).
ARG NODE_IMAGE=node:24-bookworm-slim

# ── build: native addons, TypeScript, then drop the dev dependencies ──────────────────────────
FROM ${NODE_IMAGE} AS build
# zstd-napi, better-sqlite3 and node-liblzma compile with node-gyp when no prebuilt binary fits
# (always on arm64); node-liblzma links the system liblzma, hence liblzma-dev.
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 make g++ pkg-config liblzma-dev ca-certificates \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY package.json package-lock.json ./
# infra/ (the Pulumi program, an npm workspace) is not in the build context (.dockerignore) and
# not in the image: install and prune the root package only.
RUN npm ci --workspaces=false --no-audit --no-fund
COPY tsconfig.json ./
COPY src ./src
RUN npm run build \
 && npm prune --omit=dev --workspaces=false --no-audit --no-fund

# ── runtime ──────────────────────────────────────────────────────────────────────────────────
FROM ${NODE_IMAGE}
# liblzma5 is already in the base image (dpkg needs it); named here because node-liblzma links it.
RUN apt-get update \
 && apt-get install -y --no-install-recommends liblzma5 \
 && rm -rf /var/lib/apt/lists/*
ENV NODE_ENV=production \
    LOFT_LISTEN=0.0.0.0:8080 \
    LOFT_DATA_DIR=/var/lib/loft
WORKDIR /app
COPY --from=build /app/package.json /app/package-lock.json ./
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist/src ./dist/src
# The data directory is only used in embedded mode (SQLite, local storage, generated token secret).
RUN mkdir -p /var/lib/loft && chown node:node /var/lib/loft
# The base image's unprivileged user (uid 1000); the app files stay root-owned and read-only to it.
USER node
EXPOSE 8080
# Docker's own check (ECS ignores it and uses the ALB's target-group check on the same path).
# `--mode worker` and `--mode migrate` do not listen: run those with --no-healthcheck.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
  CMD ["node", "-e", "const p=(process.env.LOFT_LISTEN||'0.0.0.0:8080').split(':').pop();fetch('http://127.0.0.1:'+p+'/v1/healthz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]
ENTRYPOINT ["node", "dist/src/bin/loft.js"]
CMD ["serve", "--mode", "api"]
