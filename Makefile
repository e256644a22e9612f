# hutch: see README.md. Every target runs as root on Debian.
.PHONY: build up test bench bench-lab gobench clean

build:
	go build -o bin/hutch ./cmd/apply

up:
	./scripts/up.sh

test:
	./scripts/test.sh

bench:
	./bench/run.sh
	./bench/lab.sh

bench-lab:
	./bench/lab.sh

gobench:
	./bench/gobench.sh

clean:
	rm -rf bin
