#!/usr/bin/env bash
# Builds hutch on a fresh Debian machine, as root, installs it as
# /usr/local/bin/hutch, and brings the seed tutorial's web server up from
# manifests/webserver.yaml; then shows it answering and says how to remove it.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH=$PATH:/usr/local/go/bin
./scripts/deps.sh
./scripts/build.sh bin/hutch
install -m 0755 bin/hutch /usr/local/bin/hutch
hutch apply -f manifests/webserver.yaml
# The server is python: it answers some tens of milliseconds after its start.
for _ in $(seq 1 250); do
  if curl -fsS -m 1 -o /dev/null http://172.16.0.2:8000/ 2>/dev/null; then break; fi
  sleep 0.02
done
echo
echo "\$ curl http://172.16.0.2:8000/"
curl -fsS -m 2 http://172.16.0.2:8000/ | head -n 12
echo
echo "\$ curl http://127.0.0.1:8080/     # the published port"
curl -fsS -m 2 -o /dev/null -w "%{http_code}\n" http://127.0.0.1:8080/
echo
hutch get
cat <<'MSG'

The web server runs in network namespace container_ns at 172.16.0.2:8000,
published on the host's port 8080:
  curl http://172.16.0.2:8000/
  curl http://127.0.0.1:8080/
  hutch logs webserver             # its output
  hutch exec webserver -- ps aux   # the container sees only its own processes
  ip netns exec container_ns ip addr
Remove it, leaving no trace:
  hutch delete -f manifests/webserver.yaml
MSG
