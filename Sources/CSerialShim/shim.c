// termios2 is not importable from Swift, and <termios.h> clashes with <asm/termbits.h>,
// so the few calls that need it live here.
#define _GNU_SOURCE
#include <asm/termbits.h>
#include <asm/ioctls.h>
#include <sys/ioctl.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <errno.h>
#include <poll.h>
#include <time.h>
#include "CSerialShim.h"

int sfs_set_custom_baud(int fd, unsigned int baud) {
    struct termios2 tio;
    if (ioctl(fd, TCGETS2, &tio) != 0) return -1;
    tio.c_cflag &= ~CBAUD;
    tio.c_cflag |= BOTHER;
    tio.c_ispeed = baud;
    tio.c_ospeed = baud;
    tio.c_cflag &= ~(CBAUD << IBSHIFT);
    tio.c_cflag |= BOTHER << IBSHIFT;
    if (ioctl(fd, TCSETS2, &tio) != 0) return -1;
    return 0;
}

long sfs_get_baud(int fd) {
    struct termios2 tio;
    if (ioctl(fd, TCGETS2, &tio) != 0) return -1;
    return (long)tio.c_ospeed;
}

int sfs_output_queue(int fd) {
    int n = 0;
    if (ioctl(fd, TIOCOUTQ, &n) != 0) return -1;
    return n;
}

int sfs_input_queue(int fd) {
    int n = 0;
    if (ioctl(fd, FIONREAD, &n) != 0) return -1;
    return n;
}

int sfs_set_exclusive(int fd) {
    return ioctl(fd, TIOCEXCL, NULL);
}

static int make_raw(int fd) {
    struct termios2 tio;
    if (ioctl(fd, TCGETS2, &tio) != 0) return -1;
    tio.c_iflag &= ~(IGNBRK | BRKINT | PARMRK | ISTRIP | INLCR | IGNCR | ICRNL | IXON | IXOFF);
    tio.c_oflag &= ~OPOST;
    tio.c_lflag &= ~(ECHO | ECHONL | ICANON | ISIG | IEXTEN);
    tio.c_cflag &= ~(CSIZE | PARENB);
    tio.c_cflag |= CS8 | CREAD | CLOCAL;
    tio.c_cc[VMIN] = 1;
    tio.c_cc[VTIME] = 0;
    return ioctl(fd, TCSETS2, &tio);
}

int sfs_openpty(int *master, int *slave, char *name, size_t name_len) {
    int m = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (m < 0) return -1;
    if (grantpt(m) != 0 || unlockpt(m) != 0) { int e = errno; close(m); errno = e; return -1; }
    char buf[128];
    if (ptsname_r(m, buf, sizeof buf) != 0) { int e = errno; close(m); errno = e; return -1; }
    int s = open(buf, O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (s < 0) { int e = errno; close(m); errno = e; return -1; }
    if (make_raw(s) != 0) { int e = errno; close(s); close(m); errno = e; return -1; }
    if (name && name_len > 0) { strncpy(name, buf, name_len - 1); name[name_len - 1] = 0; }
    *master = m;
    *slave = s;
    return 0;
}

int sfs_poll_nanoseconds(struct pollfd *fds, unsigned long count, long long timeout_ns) {
    if (timeout_ns < 0) return ppoll(fds, (nfds_t)count, NULL, NULL);
    struct timespec timeout = { .tv_sec = timeout_ns / 1000000000LL, .tv_nsec = timeout_ns % 1000000000LL };
    return ppoll(fds, (nfds_t)count, &timeout, NULL);
}

int sfs_hangup(int fd) {
    return ioctl(fd, TIOCVHANGUP);
}
