"""Testcontainers for Python against the daemon at DOCKER_HOST: an image
built from a Dockerfile (on the daemon's busybox image), a container from
it with a mapped port, a wait for its log line, an exec, a request to the
mapped port, and clean-up. Exits non-zero, saying why, on any difference.
"""

import os
import sys
import tempfile
import time
import urllib.request

import docker
from testcontainers.core.container import DockerContainer
from testcontainers.core.image import DockerImage
from testcontainers.core.wait_strategies import LogMessageWaitStrategy

PAGE = "served by a container testcontainers started\n"


def main():
    client = docker.from_env()
    before = {c.id for c in client.containers.list(all=True)}
    with tempfile.TemporaryDirectory() as ctx:
        with open(os.path.join(ctx, "index.html"), "w") as f:
            f.write(PAGE)
        with open(os.path.join(ctx, "Dockerfile"), "w") as f:
            f.write(
                "FROM busybox\n"
                "COPY index.html /www/index.html\n"
                "EXPOSE 8080\n"
                'CMD ["sh", "-c", "echo web server ready; exec httpd -f -p 8080 -h /www"]\n'
            )
        with DockerImage(path=ctx, tag="cais-testcontainers:check") as image:
            tag = str(image)
            # Started, then waited for: `with` returns once the log line came.
            container = (
                DockerContainer(tag)
                .with_exposed_ports(8080)
                .waiting_for(LogMessageWaitStrategy("web server ready"))
            )
            with container:
                logs = container.get_logs()[0].decode()
                if "web server ready" not in logs:
                    sys.exit(f"the log line is not in the logs: {logs!r}")
                code, output = container.exec(["cat", "/www/index.html"])
                if code != 0 or output.decode() != PAGE:
                    sys.exit(f"exec gave {code} {output!r}")
                host = container.get_container_host_ip()
                port = container.get_exposed_port(8080)
                url = f"http://{host}:{port}/index.html"
                body = None
                for _ in range(50):
                    try:
                        body = urllib.request.urlopen(url, timeout=2).read().decode()
                        break
                    except OSError:
                        time.sleep(0.1)
                if body != PAGE:
                    sys.exit(f"{url} gave {body!r}")
                cid = container.get_wrapped_container().id
                print(f"container {cid[:12]}: log line, exec and {url} as expected")
            after = {c.id for c in client.containers.list(all=True)}
            if after - before:
                sys.exit(f"containers left behind: {after - before}")
        if client.images.list(name="cais-testcontainers"):
            sys.exit("the image was not removed")
    print("testcontainers: clean-up left nothing behind")


if __name__ == "__main__":
    main()
