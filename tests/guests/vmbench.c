/* vmbench: the small measuring tool of the side-by-side VMM benchmark (tests/scenarios/bench-vmm.sh),
 * built static for riscv64 by resources/l1-initrd.sh (/guests/vmbench in L1; the guest gets it on a raw
 * disk, as iobench). Every figure is measured on one side's CLOCK_MONOTONIC.
 *
 *   vmbench now                        print the monotonic clock (seconds, 6 decimals)
 *   vmbench stamp PATTERN FILE         copy stdin to stdout unchanged; when PATTERN first appears, write
 *                                      the monotonic time to FILE (the VMM's console -> "guest reached init")
 *   vmbench sink PORT                  accept one TCP connection, read until EOF:
 *                                      NETBENCH sink bytes=N seconds=S MiB/s=X
 *   vmbench send HOST PORT MB          connect, send MB MiB, half-close, wait for the peer to close:
 *                                      NETBENCH send bytes=N seconds=S MiB/s=X
 *   vmbench rr-server PORT             accept one connection, echo every byte until EOF
 *   vmbench rr HOST PORT SECONDS       1-byte request/response round trips (TCP_NODELAY) for SECONDS:
 *                                      NETBENCH rr round_trips=N seconds=S per_s=X avg_us=Y
 * Exit status 0 on success, 1 on errors (a message on stderr), 2 on usage errors. Every socket has a 60 s
 * timeout, so nothing hangs.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void die(const char *what)
{
	fprintf(stderr, "vmbench: %s: %s\n", what, strerror(errno));
	exit(1);
}

static void usage(void)
{
	fprintf(stderr, "usage: vmbench now | stamp PATTERN FILE | sink PORT | send HOST PORT MB |\n"
			"               rr-server PORT | rr HOST PORT SECONDS\n");
	exit(2);
}

static void timeouts(int fd)
{
	struct timeval tv = {.tv_sec = 60};
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
}

static int accept_one(const char *port)
{
	int s = socket(AF_INET, SOCK_STREAM, 0);
	if (s < 0)
		die("socket");
	int one = 1;
	setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(atoi(port))};
	if (bind(s, (struct sockaddr *)&a, sizeof(a)) < 0)
		die("bind");
	if (listen(s, 1) < 0)
		die("listen");
	timeouts(s);
	int c = accept(s, NULL, NULL);
	if (c < 0)
		die("accept");
	close(s);
	timeouts(c);
	return c;
}

static int connect_to(const char *host, const char *port)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(atoi(port))};
	if (inet_pton(AF_INET, host, &a.sin_addr) != 1) {
		fprintf(stderr, "vmbench: bad IPv4 address %s\n", host);
		exit(2);
	}
	for (int attempt = 0;; attempt++) {
		int s = socket(AF_INET, SOCK_STREAM, 0);
		if (s < 0)
			die("socket");
		timeouts(s);
		if (connect(s, (struct sockaddr *)&a, sizeof(a)) == 0)
			return s;
		if (attempt >= 100 || errno != ECONNREFUSED)
			die("connect");
		close(s);
		usleep(100000);
	}
}

static void write_all(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			die("write");
		p += w;
		n -= (size_t)w;
	}
}

static int stamp(const char *pattern, const char *file)
{
	size_t plen = strlen(pattern);
	if (plen == 0 || plen > 256)
		usage();
	char buf[4096 + 256];
	size_t keep = 0;
	int found = 0;
	for (;;) {
		ssize_t n = read(0, buf + keep, 4096);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		write_all(1, buf + keep, (size_t)n);
		size_t len = keep + (size_t)n;
		if (!found && memmem(buf, len, pattern, plen)) {
			double t = now();
			FILE *f = fopen(file, "w");
			if (!f)
				die(file);
			fprintf(f, "%.6f\n", t);
			fclose(f);
			found = 1;
		}
		keep = len < plen - 1 ? len : plen - 1;
		memmove(buf, buf + len - keep, keep);
	}
	return 0;
}

static int sink(const char *port)
{
	int c = accept_one(port);
	static char buf[1 << 16];
	unsigned long long bytes = 0;
	double t0 = now();
	for (;;) {
		ssize_t n = read(c, buf, sizeof(buf));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			die("read");
		if (n == 0)
			break;
		bytes += (unsigned long long)n;
	}
	double s = now() - t0;
	close(c);
	printf("NETBENCH sink bytes=%llu seconds=%.3f MiB/s=%.2f\n", bytes, s, bytes / 1048576.0 / s);
	return 0;
}

static int send_mb(const char *host, const char *port, const char *mb)
{
	long n = atol(mb);
	if (n <= 0)
		usage();
	static char buf[1 << 16];
	for (size_t i = 0; i < sizeof(buf); i++)
		buf[i] = (char)(i * 7 + 13);
	int s = connect_to(host, port);
	double t0 = now();
	unsigned long long total = (unsigned long long)n << 20, sent = 0;
	while (sent < total) {
		size_t chunk = total - sent < sizeof(buf) ? (size_t)(total - sent) : sizeof(buf);
		write_all(s, buf, chunk);
		sent += chunk;
	}
	shutdown(s, SHUT_WR);
	/* The peer closes after reading everything. */
	while (read(s, buf, sizeof(buf)) > 0)
		;
	double secs = now() - t0;
	close(s);
	printf("NETBENCH send bytes=%llu seconds=%.3f MiB/s=%.2f\n", sent, secs, sent / 1048576.0 / secs);
	return 0;
}

static int rr_server(const char *port)
{
	int c = accept_one(port);
	int one = 1;
	setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	char b;
	for (;;) {
		ssize_t n = read(c, &b, 1);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		write_all(c, &b, 1);
	}
	close(c);
	return 0;
}

static int rr(const char *host, const char *port, const char *seconds)
{
	double limit = atof(seconds);
	if (limit <= 0)
		usage();
	int s = connect_to(host, port);
	int one = 1;
	setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	unsigned long long trips = 0;
	double t0 = now(), t;
	char b = 'x';
	do {
		write_all(s, &b, 1);
		ssize_t n;
		while ((n = read(s, &b, 1)) < 0 && errno == EINTR)
			;
		if (n != 1)
			die("read (round trip)");
		trips++;
		t = now() - t0;
	} while (t < limit);
	close(s);
	printf("NETBENCH rr round_trips=%llu seconds=%.3f per_s=%.1f avg_us=%.1f\n", trips, t, trips / t,
	       t / trips * 1e6);
	return 0;
}

int main(int argc, char **argv)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc < 2)
		usage();
	const char *m = argv[1];
	if (!strcmp(m, "now") && argc == 2) {
		printf("%.6f\n", now());
		return 0;
	}
	if (!strcmp(m, "stamp") && argc == 4)
		return stamp(argv[2], argv[3]);
	if (!strcmp(m, "sink") && argc == 3)
		return sink(argv[2]);
	if (!strcmp(m, "send") && argc == 5)
		return send_mb(argv[2], argv[3], argv[4]);
	if (!strcmp(m, "rr-server") && argc == 3)
		return rr_server(argv[2]);
	if (!strcmp(m, "rr") && argc == 5)
		return rr(argv[2], argv[3], argv[4]);
	usage();
	return 2;
}
