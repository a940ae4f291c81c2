# ferry: make test installs what the tests need, then runs them all.
GO       ?= go
# command:package pairs the tests drive for real.
APT_DEPS := age:age zstd:zstd chromium:chromium qemu-arm:qemu-user file:file

.PHONY: all build test deps vet cross bench clean

all: build

build:
	CGO_ENABLED=0 $(GO) build -o ferry ./cmd/ferry

# deps installs the tools the tests drive for real (Debian packages).
deps:
	@missing=""; for d in $(APT_DEPS); do command -v $${d%%:*} >/dev/null 2>&1 || missing="$$missing $${d#*:}"; done; \
	if [ -n "$$missing" ]; then \
		echo "installing:$$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi

vet:
	$(GO) vet ./...

# cross checks that the pure-Go build works for every Raspberry Pi.
cross:
	CGO_ENABLED=0 GOOS=linux GOARCH=arm GOARM=6 $(GO) build -trimpath -o /dev/null ./cmd/ferry
	CGO_ENABLED=0 GOOS=linux GOARCH=arm64 $(GO) build -trimpath -o /dev/null ./cmd/ferry

# test is the README's test command; the steps live in .ci/run, which CI
# runs on a clean clone, so that both run exactly the same thing.
test:
	bash .ci/run

# bench runs the benchmarks documented in docs/benchmarks.md.
bench:
	$(GO) test -run '^$$' -bench . -benchmem ./...

clean:
	rm -f ferry

# release builds static, versioned binaries for every Raspberry Pi (armv6,
# armv7, arm64) and amd64 into dist/, with SHA256SUMS (tools/release).
.PHONY: release
release:
	$(GO) run ./tools/release -out dist
