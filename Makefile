# hutch: see README.md. Every target runs as root on Debian.
.PHONY: build up test bench bench-lab bench-scale bench-ports bench-startup gobench clean

build:
	./scripts/build.sh bin/hutch

up:
	./scripts/up.sh

test:
	./scripts/test.sh

bench:
	./bench/run.sh
	./bench/lab.sh
	./bench/scale.sh
	./bench/ports.sh
	./bench/startup.sh

bench-lab:
	./bench/lab.sh

bench-scale:
	./bench/scale.sh

bench-ports:
	./bench/ports.sh

bench-startup:
	./bench/startup.sh

gobench:
	./bench/gobench.sh

clean:
	rm -rf bin
