/*
 * vsock-test: an AF_VSOCK stream check for the nested bench, run on either side of rvvmm's virtio-vsock
 * device (the L1 host through /dev/vhost-vsock, the L2 guest through vmw_vsock_virtio_transport).
 * Built static for riscv64 by resources/l1-initrd.sh (/guests/vsock-test in L1).
 *
 *   vsock-test listen PORT N          server on VMADDR_CID_ANY:PORT: accepts one connection, reads exactly N
 *                                     bytes and checks them against pattern 1, sends back N bytes of
 *                                     pattern 2, then waits for the peer to close
 *   vsock-test connect CID PORT N     client: connects to CID:PORT (retrying for up to 10 s while the
 *                                     connection is refused, the transport is absent or it times out, so
 *                                     it may start before the listener), sends N bytes of pattern 1,
 *                                     reads N bytes and checks them against pattern 2
 *
 *   pattern 1: byte i = (i * 7 + 13) & 0xff      (client -> server)
 *   pattern 2: byte i = (i * 11 + 5) & 0xff      (server -> client)
 *
 * Prints one line on stdout, `VSOCK-OK recv=N sent=N` (exit status 0) or `VSOCK-FAIL <reason>` (exit
 * status 1); details (peer address, time taken) go to stderr. Usage errors exit with status 2. Short reads
 * and writes are handled; every blocking step (accept, connect, each read and write) gives up after
 * VSOCK_TEST_TIMEOUT seconds (environment, default 30), so the program never hangs.
 *
 * Getting it into the L2 guest: the L2 initramfs is built once by resources/build-images.sh and holds no
 * test tools, so a scenario hands the binary over as a disk, as tests/scenarios/bench-disk.sh does with
 * iobench: in L1, `dd if=/guests/vsock-test of=tool.img bs=512 conv=sync` (padded to whole sectors), start
 * the guest with `--disk path=tool.img,readonly=on`, and in the guest copy the file's first bytes back:
 * `head -c $(wc -c </guests/vsock-test) /dev/vdX >/tmp/vsock-test; chmod +x /tmp/vsock-test` (the size is
 * known in L1; compare sha256sum on both sides). VMADDR_CID_HOST (2) is L1 as seen from the guest.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>
#include <linux/vm_sockets.h>

#define CHUNK 65536
#define CONNECT_RETRY_SECONDS 10

static int timeout_s = 30;

static unsigned char pattern1(uint64_t i) { return (unsigned char)((i * 7 + 13) & 0xff); }
static unsigned char pattern2(uint64_t i) { return (unsigned char)((i * 11 + 5) & 0xff); }

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int fail(const char *fmt, ...)
{
	va_list ap;
	printf("VSOCK-FAIL ");
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	fflush(stdout);
	return 1;
}

static int set_timeouts(int fd)
{
	struct timeval tv = { .tv_sec = timeout_s, .tv_usec = 0 };
	if (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) < 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) < 0)
		return -1;
	return 0;
}

/* Sends n bytes of pattern (byte i of the stream = pat(i)); returns 0 or a failure (already printed). */
static int send_pattern(int fd, uint64_t n, unsigned char (*pat)(uint64_t), const char *what)
{
	static unsigned char buf[CHUNK];
	uint64_t off = 0;
	while (off < n) {
		size_t len = n - off < CHUNK ? (size_t)(n - off) : CHUNK;
		for (size_t k = 0; k < len; k++)
			buf[k] = pat(off + k);
		size_t done = 0;
		while (done < len) {
			ssize_t w = send(fd, buf + done, len - done, MSG_NOSIGNAL);
			if (w < 0 && errno == EINTR)
				continue;
			if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
				return fail("timeout (%ds) sending %s after %" PRIu64 " of %" PRIu64 " bytes", timeout_s,
					    what, off + done, n);
			if (w < 0)
				return fail("send %s after %" PRIu64 " of %" PRIu64 " bytes: %s", what, off + done, n,
					    strerror(errno));
			if (w == 0)
				return fail("send %s returned 0 after %" PRIu64 " bytes", what, off + done);
			done += (size_t)w;
		}
		off += len;
	}
	return 0;
}

/* Reads exactly n bytes and checks them against pat; returns 0 or a failure (already printed). */
static int recv_pattern(int fd, uint64_t n, unsigned char (*pat)(uint64_t), const char *what)
{
	static unsigned char buf[CHUNK];
	uint64_t off = 0;
	while (off < n) {
		size_t want = n - off < CHUNK ? (size_t)(n - off) : CHUNK;
		ssize_t r = recv(fd, buf, want, 0);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return fail("timeout (%ds) reading %s after %" PRIu64 " of %" PRIu64 " bytes", timeout_s, what,
				    off, n);
		if (r < 0)
			return fail("recv %s after %" PRIu64 " of %" PRIu64 " bytes: %s", what, off, n, strerror(errno));
		if (r == 0)
			return fail("peer closed after %" PRIu64 " of %" PRIu64 " bytes of %s", off, n, what);
		for (ssize_t k = 0; k < r; k++) {
			unsigned char expect = pat(off + (uint64_t)k);
			if (buf[k] != expect)
				return fail("mismatch in %s at byte %" PRIu64 ": got 0x%02x, want 0x%02x", what,
					    off + (uint64_t)k, buf[k], expect);
		}
		off += (uint64_t)r;
	}
	return 0;
}

static int parse_u64(const char *s, uint64_t max, uint64_t *out)
{
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 0);
	if (errno || end == s || *end || s[0] == '-' || v > max)
		return -1;
	*out = v;
	return 0;
}

static int do_listen(uint32_t port, uint64_t n)
{
	int lfd = socket(AF_VSOCK, SOCK_STREAM, 0);
	if (lfd < 0)
		return fail("socket(AF_VSOCK): %s", strerror(errno));
	struct sockaddr_vm addr = { .svm_family = AF_VSOCK, .svm_cid = VMADDR_CID_ANY, .svm_port = port };
	if (bind(lfd, (struct sockaddr *)&addr, sizeof(addr)) < 0)
		return fail("bind port %" PRIu32 ": %s", port, strerror(errno));
	if (listen(lfd, 1) < 0)
		return fail("listen: %s", strerror(errno));
	fprintf(stderr, "vsock-test: listening on port %" PRIu32 "\n", port);
	struct pollfd p = { .fd = lfd, .events = POLLIN };
	int pr;
	do
		pr = poll(&p, 1, timeout_s * 1000);
	while (pr < 0 && errno == EINTR);
	if (pr < 0)
		return fail("poll: %s", strerror(errno));
	if (pr == 0)
		return fail("timeout (%ds) waiting for a connection on port %" PRIu32, timeout_s, port);
	struct sockaddr_vm peer;
	socklen_t plen = sizeof(peer);
	int fd = accept(lfd, (struct sockaddr *)&peer, &plen);
	if (fd < 0)
		return fail("accept: %s", strerror(errno));
	close(lfd);
	fprintf(stderr, "vsock-test: connection from cid %" PRIu32 " port %" PRIu32 "\n", peer.svm_cid,
		peer.svm_port);
	if (set_timeouts(fd) < 0)
		return fail("setsockopt timeouts: %s", strerror(errno));
	double t0 = now();
	if (recv_pattern(fd, n, pattern1, "pattern 1"))
		return 1;
	if (send_pattern(fd, n, pattern2, "pattern 2"))
		return 1;
	double t1 = now();
	/* Let the peer read everything: half-close, then wait for its close (extra data is an error). */
	shutdown(fd, SHUT_WR);
	unsigned char extra[256];
	for (;;) {
		ssize_t r = recv(fd, extra, sizeof(extra), 0);
		if (r < 0 && errno == EINTR)
			continue;
		if (r > 0)
			return fail("peer sent more than %" PRIu64 " bytes", n);
		if (r < 0)
			fprintf(stderr, "vsock-test: waiting for the peer to close: %s\n", strerror(errno));
		break;
	}
	close(fd);
	fprintf(stderr, "vsock-test: %" PRIu64 " bytes each way in %.3f s\n", n, t1 - t0);
	printf("VSOCK-OK recv=%" PRIu64 " sent=%" PRIu64 "\n", n, n);
	return 0;
}

static int do_connect(uint32_t cid, uint32_t port, uint64_t n)
{
	double deadline = now() + CONNECT_RETRY_SECONDS;
	int fd, attempts = 0;
	for (;;) {
		fd = socket(AF_VSOCK, SOCK_STREAM, 0);
		if (fd < 0)
			return fail("socket(AF_VSOCK): %s", strerror(errno));
		struct sockaddr_vm addr = { .svm_family = AF_VSOCK, .svm_cid = cid, .svm_port = port };
		attempts++;
		if (connect(fd, (struct sockaddr *)&addr, sizeof(addr)) == 0)
			break;
		int e = errno;
		close(fd);
		if (e == EINTR)
			continue;
		/* No listener yet: refused (ECONNRESET: virtio-vsock answers with a reset); no transport or
		 * peer yet: ENODEV; no answer within vsock's connect timeout (2 s): ETIMEDOUT. */
		if ((e == ECONNREFUSED || e == ENODEV || e == ETIMEDOUT || e == ECONNRESET) && now() < deadline) {
			usleep(200 * 1000);
			continue;
		}
		return fail("connect to cid %" PRIu32 " port %" PRIu32 ": %s (%d attempts)", cid, port, strerror(e),
			    attempts);
	}
	fprintf(stderr, "vsock-test: connected to cid %" PRIu32 " port %" PRIu32 " (attempt %d)\n", cid, port,
		attempts);
	if (set_timeouts(fd) < 0)
		return fail("setsockopt timeouts: %s", strerror(errno));
	double t0 = now();
	if (send_pattern(fd, n, pattern1, "pattern 1"))
		return 1;
	if (recv_pattern(fd, n, pattern2, "pattern 2"))
		return 1;
	double t1 = now();
	close(fd);
	fprintf(stderr, "vsock-test: %" PRIu64 " bytes each way in %.3f s\n", n, t1 - t0);
	printf("VSOCK-OK recv=%" PRIu64 " sent=%" PRIu64 "\n", n, n);
	return 0;
}

static int usage(void)
{
	fprintf(stderr, "usage: vsock-test listen PORT N\n"
			"       vsock-test connect CID PORT N\n"
			"(VSOCK_TEST_TIMEOUT=SECONDS: the limit of each blocking step, default 30)\n");
	return 2;
}

int main(int argc, char **argv)
{
	uint64_t cid, port, n, t;
	const char *env = getenv("VSOCK_TEST_TIMEOUT");
	if (env && *env) {
		if (parse_u64(env, 86400, &t) < 0 || t == 0)
			return usage();
		timeout_s = (int)t;
	}
	signal(SIGPIPE, SIG_IGN);
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc == 4 && strcmp(argv[1], "listen") == 0) {
		if (parse_u64(argv[2], UINT32_MAX, &port) < 0 || parse_u64(argv[3], UINT64_MAX, &n) < 0)
			return usage();
		return do_listen((uint32_t)port, n);
	}
	if (argc == 5 && strcmp(argv[1], "connect") == 0) {
		if (parse_u64(argv[2], UINT32_MAX, &cid) < 0 || parse_u64(argv[3], UINT32_MAX, &port) < 0 ||
		    parse_u64(argv[4], UINT64_MAX, &n) < 0)
			return usage();
		return do_connect((uint32_t)cid, (uint32_t)port, n);
	}
	return usage();
}
