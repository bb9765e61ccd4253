/*
 * iobench: a tiny disk throughput benchmark for the nested bench (tests/scenarios/bench-disk.sh).
 * Built static for riscv64 by resources/l1-initrd.sh (/guests/iobench in L1).
 *
 *   iobench PATH seqread  SIZE_MB            1 MiB reads over the first SIZE_MB MiB
 *   iobench PATH seqwrite SIZE_MB            1 MiB writes of non-zero data, then fsync (timed)
 *   iobench PATH randread SECONDS [SIZE_MB]  4 KiB reads at random 4 KiB-aligned offsets within the first
 *                                            SIZE_MB MiB (default: the whole file/device) for SECONDS
 *
 * A block device is opened with O_DIRECT (no page cache: every request reaches the device). A regular file
 * uses buffered I/O; before reading, its page cache is dropped where the kernel allows it (fsync +
 * posix_fadvise DONTNEED, /proc/sys/vm/drop_caches). A file on tmpfs/ramfs IS memory, so its numbers are a
 * memory-backed ceiling, which the output says (note=memory-backed-ceiling).
 *
 * Prints one line:
 *   IOBENCH mode=seqread bytes=N seconds=S MiB/s=X access=direct|buffered fs=...
 *   IOBENCH mode=randread ios=N seconds=S IOPS=X access=... fs=...
 * Exit status 0 on success, 1 on any I/O error (with a message on stderr), 2 on usage errors.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <linux/magic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#define MIB (1024 * 1024)
#define SEQ_BLOCK MIB
#define RAND_BLOCK 4096
#define ALIGN 4096

static const char *path;

static void usage(void)
{
	fprintf(stderr, "usage: iobench PATH seqread|seqwrite SIZE_MB\n"
			"       iobench PATH randread SECONDS [SIZE_MB]\n");
	exit(2);
}

static void die(const char *what)
{
	fprintf(stderr, "iobench: %s: %s: %s\n", path, what, strerror(errno));
	exit(1);
}

static double now(void)
{
	struct timespec ts;
	if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0)
		die("clock_gettime");
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static long parse_positive(const char *s, const char *what)
{
	char *end;
	errno = 0;
	long v = strtol(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || v <= 0 || v > 1L << 20) {
		fprintf(stderr, "iobench: bad %s '%s'\n", what, s);
		usage();
	}
	return v;
}

/* Reads exactly len bytes at off unless EOF comes first; returns the count read. */
static size_t pread_full(int fd, char *buf, size_t len, off_t off)
{
	size_t done = 0;
	while (done < len) {
		ssize_t n = pread(fd, buf + done, len - done, off + (off_t)done);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			die("read");
		}
		if (n == 0)
			break;
		done += (size_t)n;
	}
	return done;
}

static void pwrite_full(int fd, const char *buf, size_t len, off_t off)
{
	size_t done = 0;
	while (done < len) {
		ssize_t n = pwrite(fd, buf + done, len - done, off + (off_t)done);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			die("write");
		}
		if (n == 0) {
			errno = ENOSPC;
			die("write");
		}
		done += (size_t)n;
	}
}

/* Best effort: drop the file's cached pages (no-op on tmpfs, whose pages are the file). */
static void drop_cache(int fd)
{
	if (fsync(fd) != 0)
		die("fsync");
	int err = posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
	if (err != 0)
		fprintf(stderr, "iobench: posix_fadvise(DONTNEED): %s (ignored)\n", strerror(err));
	int dc = open("/proc/sys/vm/drop_caches", O_WRONLY);
	if (dc >= 0) {
		if (write(dc, "3\n", 2) != 2)
			fprintf(stderr, "iobench: drop_caches: %s (ignored)\n", strerror(errno));
		if (close(dc) != 0)
			fprintf(stderr, "iobench: close drop_caches: %s (ignored)\n", strerror(errno));
	}
}

static const char *fs_name(int fd, int *memory_backed)
{
	struct statfs sfs;
	*memory_backed = 0;
	if (fstatfs(fd, &sfs) != 0)
		return "unknown";
	switch ((unsigned long)sfs.f_type) {
	case TMPFS_MAGIC:
		*memory_backed = 1;
		return "tmpfs";
	case RAMFS_MAGIC:
		*memory_backed = 1;
		return "ramfs";
	default:
		return "other";
	}
}

int main(int argc, char **argv)
{
	if (argc < 4 || argc > 5)
		usage();
	path = argv[1];
	const char *mode = argv[2];
	int write_mode = 0, rand_mode = 0;
	if (strcmp(mode, "seqread") == 0) {
	} else if (strcmp(mode, "seqwrite") == 0) {
		write_mode = 1;
	} else if (strcmp(mode, "randread") == 0) {
		rand_mode = 1;
	} else {
		usage();
	}
	if (argc == 5 && !rand_mode)
		usage();
	long arg = parse_positive(argv[3], rand_mode ? "SECONDS" : "SIZE_MB");
	long size_mb = rand_mode ? (argc == 5 ? parse_positive(argv[4], "SIZE_MB") : 0) : arg;

	struct stat st;
	if (stat(path, &st) != 0) {
		if (errno != ENOENT || !write_mode)
			die("stat");
		memset(&st, 0, sizeof st); /* seqwrite creates a missing file */
		st.st_mode = S_IFREG;
	}
	int blockdev = S_ISBLK(st.st_mode);
	if (!blockdev && !S_ISREG(st.st_mode)) {
		fprintf(stderr, "iobench: %s: not a block device or regular file\n", path);
		return 2;
	}
	int flags = (write_mode ? O_WRONLY | (blockdev ? 0 : O_CREAT) : O_RDONLY) | O_CLOEXEC;
	if (blockdev)
		flags |= O_DIRECT;
	int fd = open(path, flags, 0644);
	if (fd < 0)
		die("open");

	/* Size of the file or device, to bound reads and report short ones. */
	uint64_t dev_size;
	if (blockdev) {
		if (ioctl(fd, BLKGETSIZE64, &dev_size) != 0)
			die("BLKGETSIZE64");
	} else {
		dev_size = (uint64_t)st.st_size;
	}
	int memory_backed = 0;
	const char *fs = blockdev ? "blockdev" : fs_name(fd, &memory_backed);
	const char *access = blockdev ? "direct" : "buffered";

	void *mem;
	int err = posix_memalign(&mem, ALIGN, SEQ_BLOCK);
	if (err != 0) {
		errno = err;
		die("posix_memalign");
	}
	char *buf = mem;
	if (!write_mode && !blockdev)
		drop_cache(fd);

	if (rand_mode) {
		uint64_t span = size_mb > 0 ? (uint64_t)size_mb * MIB : dev_size;
		if (span > dev_size)
			span = dev_size;
		uint64_t blocks = span / RAND_BLOCK;
		if (blocks == 0) {
			fprintf(stderr, "iobench: %s: smaller than %d bytes\n", path, RAND_BLOCK);
			return 1;
		}
		uint64_t x = 0x9e3779b97f4a7c15ull; /* xorshift64: same sequence every run */
		uint64_t ios = 0;
		double t0 = now(), limit = t0 + (double)arg, t1 = t0;
		for (;;) {
			for (int i = 0; i < 16; i++) {
				x ^= x << 13;
				x ^= x >> 7;
				x ^= x << 17;
				off_t off = (off_t)((x % blocks) * RAND_BLOCK);
				if (pread_full(fd, buf, RAND_BLOCK, off) != RAND_BLOCK) {
					errno = EIO;
					die("short read");
				}
				ios++;
			}
			t1 = now();
			if (t1 >= limit)
				break;
		}
		double secs = t1 - t0;
		printf("IOBENCH mode=randread ios=%llu seconds=%.3f IOPS=%.1f span_mb=%llu access=%s fs=%s%s\n",
		       (unsigned long long)ios, secs, (double)ios / secs,
		       (unsigned long long)(span / MIB), access, fs,
		       memory_backed ? " note=memory-backed-ceiling" : "");
	} else {
		uint64_t total = (uint64_t)size_mb * MIB, done = 0;
		if (blockdev && total > dev_size) {
			fprintf(stderr, "iobench: %s: %ld MiB asked, device has %llu bytes\n", path, size_mb,
				(unsigned long long)dev_size);
			return 1;
		}
		double t0 = now();
		if (write_mode) {
			/* Non-zero data, and no two 4 KiB blocks alike (the block's index in its first 8 bytes),
			 * without spending the timed loop on generating it. */
			for (size_t i = 0; i < SEQ_BLOCK; i++)
				buf[i] = (char)(0x5a ^ (i * 7));
			for (uint64_t blk = 0; done < total; blk++) {
				for (size_t i = 0; i < SEQ_BLOCK; i += RAND_BLOCK) {
					uint64_t v = blk * (SEQ_BLOCK / RAND_BLOCK) + i / RAND_BLOCK + 1;
					memcpy(buf + i, &v, 8);
				}
				pwrite_full(fd, buf, SEQ_BLOCK, (off_t)done);
				done += SEQ_BLOCK;
			}
			if (fsync(fd) != 0)
				die("fsync");
		} else {
			while (done < total) {
				size_t n = pread_full(fd, buf, SEQ_BLOCK, (off_t)done);
				done += n;
				if (n < SEQ_BLOCK)
					break; /* EOF: report what was read */
			}
		}
		double secs = now() - t0;
		printf("IOBENCH mode=%s bytes=%llu seconds=%.3f MiB/s=%.2f access=%s fs=%s%s\n", mode,
		       (unsigned long long)done, secs, (double)done / MIB / secs, access, fs,
		       memory_backed ? " note=memory-backed-ceiling" : "");
		if (done < total)
			fprintf(stderr, "iobench: %s: EOF after %llu of %llu bytes\n", path,
				(unsigned long long)done, (unsigned long long)total);
	}
	if (close(fd) != 0)
		die("close");
	if (fflush(stdout) != 0)
		die("stdout");
	free(mem);
	return 0;
}
