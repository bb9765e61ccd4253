/* tapfd IFNAME FD PROGRAM [ARGS...]: opens the tap IFNAME (IFF_TAP | IFF_NO_PI | IFF_VNET_HDR, as libvirt
 * and Kata open them for cloud-hypervisor), puts it on fd FD and runs PROGRAM with it: how an
 * orchestrator hands rvvmm a tap it created with the privilege that takes (--net fd=FD). */
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

int main(int argc, char **argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: tapfd IFNAME FD PROGRAM [ARGS...]\n");
        return 2;
    }
    int fd = open("/dev/net/tun", O_RDWR);
    if (fd < 0) {
        perror("tapfd: /dev/net/tun");
        return 1;
    }
    struct ifreq ifr;
    memset(&ifr, 0, sizeof ifr);
    strncpy(ifr.ifr_name, argv[1], IFNAMSIZ - 1);
    ifr.ifr_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR;
    if (ioctl(fd, TUNSETIFF, &ifr) < 0) {
        perror("tapfd: TUNSETIFF");
        return 1;
    }
    int want = atoi(argv[2]);
    if (fd != want) {
        if (dup2(fd, want) < 0) {
            perror("tapfd: dup2");
            return 1;
        }
        close(fd);
    }
    execvp(argv[3], argv + 3);
    perror("tapfd: exec");
    return 127;
}
