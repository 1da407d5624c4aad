# Packaging targets (issue 7). Building and testing the module itself: cargo and scripts/ (README.md).
# Details: packaging/README.md.

.PHONY: help deb deb-test deb-test-host deb-lint deb-repro rpm-check rpm clean-deb

help:
	@echo "make deb             build target/debian/libapache2-mod-oauth2-rs_<version>_<arch>.deb (debhelper + dh_apache2), run lintian"
	@echo "                     (DEB_SOURCE=HEAD by default; DEB_SOURCE=worktree packages uncommitted changes)"
	@echo "make deb-test        build, then install/use/replace/purge the package in a Debian 12 chroot (packaging/test-deb.sh)"
	@echo "make deb-test-host   the same on this host, restoring it afterwards (packaging/test-deb.sh --host)"
	@echo "make deb-lint        lintian on the built package"
	@echo "make deb-repro       build the same commit in a second directory and compare the modules' sha256"
	@echo "make rpm-check       parse packaging/rpm/mod_oauth2-rs.spec with rpmspec/rpmbuild"
	@echo "make rpm             try rpmbuild -bb with the spec (for Fedora/RHEL; see packaging/README.md)"
	@echo "make clean-deb       remove target/debian and target/rpm"

deb:
	packaging/build-deb.sh

deb-test: deb
	packaging/test-deb.sh

deb-test-host: deb
	packaging/test-deb.sh --host

deb-lint:
	lintian --fail-on error --display-info target/debian/libapache2-mod-oauth2-rs_*.deb

deb-repro:
	packaging/repro-check.sh

rpm-check:
	packaging/rpm/build-rpm.sh check

rpm:
	packaging/rpm/build-rpm.sh build

clean-deb:
	rm -rf target/debian target/rpm

# Benchmark against plain Apache and the C module (bench/README.md). BENCH_ARGS=--smoke: the short check.
.PHONY: bench
bench:
	bench/run $(BENCH_ARGS)
