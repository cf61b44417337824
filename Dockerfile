# syntax=docker/dockerfile:1
#
# One image for every Ferry process: the command chooses which one runs, e.g.
#   node --initial-old-space-size=128 --no-memory-reducer --import tsx services/host-agent/src/main.ts
#   node --initial-old-space-size=128 --no-memory-reducer --import tsx libs/emu-host/src/main.ts --name host-1 --dir /run/ferry/xen --capacity 2GiB
#   node bin/ferry.js demo --coordinator coordinator:7000     (the CLI)
# Services run from their TypeScript sources through tsx, as everywhere else in Ferry, with the V8
# flags of libs/runtime node-flags.ts (fewer full garbage collections in the downtime window).
#
# The build stage has the compilers and Debian's libxen-dev 4.17, so `npm ci` builds every native
# addon (the shared-memory addon, and the native Xen driver wherever its package exists); the
# runtime stage has only Node, the Xen runtime libraries those addons link against, and tini.

ARG NODE_IMAGE=node:20-bookworm

FROM ${NODE_IMAGE} AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends libxen-dev \
 && rm -rf /var/lib/apt/lists/*
# node-gyp builds against this image's own Node headers instead of downloading them.
ENV npm_config_nodedir=/usr/local
# The repository's lockfile and allowScripts expect npm 11 (README: Node 20 with npm 11).
RUN npm install --global --no-audit --no-fund npm@11
WORKDIR /opt/ferry
COPY . .
RUN --mount=type=cache,target=/root/.npm npm ci --no-audit --no-fund
# Every addon must have built: a package with a binding.gyp and no .node file is a broken image.
RUN set -e; for gyp in libs/*/binding.gyp; do \
      dir="${gyp%/binding.gyp}"; \
      ls "$dir"/build/Release/*.node >/dev/null 2>&1 || { echo "native addon in $dir was not built" >&2; exit 1; }; \
    done
# Keep what runs: production dependencies, plus tsx (services run from source). tsx is a
# devDependency today, so prune drops it; it then gets a folder of its own, linked where
# `--import tsx` and require('tsx/cjs/api') find it. Once tsx is a dependency this does nothing.
RUN --mount=type=cache,target=/root/.npm npm prune --omit=dev --no-audit --no-fund \
 && if ! node -e "require.resolve('tsx')" 2>/dev/null; then \
      npm install --prefix /opt/ferry/.tsx --no-save --no-audit --no-fund \
        "tsx@$(node -p "require('./package-lock.json').packages['node_modules/tsx'].version")" \
      && ln -s ../.tsx/node_modules/tsx node_modules/tsx; \
    fi \
 && node -e "require.resolve('tsx')"

FROM ${NODE_IMAGE}-slim AS runtime
# tini: PID 1 that forwards SIGTERM to Node and reaps children. libxenmisc4.17 brings libxenctrl,
# libxenguest and libxenlight with libxenstore, libxenforeignmemory and the rest they need.
RUN apt-get update \
 && apt-get install -y --no-install-recommends tini libxenmisc4.17 \
 && rm -rf /var/lib/apt/lists/*
RUN groupadd --system --gid 10001 ferry \
 && useradd --system --uid 10001 --gid ferry --home-dir /opt/ferry --no-create-home --shell /usr/sbin/nologin ferry \
 && mkdir -p /run/ferry && chown ferry:ferry /run/ferry
WORKDIR /opt/ferry
# The code belongs to root: the ferry user can read it, not change it.
COPY --from=build /opt/ferry /opt/ferry
ENV NODE_ENV=production
# gRPC: 7000 coordinator, 7001 host-agent, 7002 memory-tracker, 7003 balloon-manager,
# 7004 page-streamer; 7005 the page-streamer's data port; 9460-9464 their Prometheus metrics
# (as docker-compose.yml and k8s/ set FERRY_METRICS_LISTEN).
EXPOSE 7000 7001 7002 7003 7004 7005 9460 9461 9462 9463 9464
# Not root: every process of the emulated setup runs as ferry. A per-host service on a real Xen
# dom0 needs root and /dev/xen; its deployment says so (k8s/overlays/xen).
USER 10001:10001
ENTRYPOINT ["/usr/bin/tini", "--"]
CMD ["node", "bin/ferry.js", "--help"]
