# hutch: see README.md. Every target runs as root on Debian.
.PHONY: build up test bench gobench clean

build:
	go build -o bin/hutch ./cmd/apply

up:
	./scripts/up.sh

test:
	./scripts/test.sh

bench:
	./bench/run.sh

gobench:
	./bench/gobench.sh

clean:
	rm -rf bin
