#ifndef CSERIALSHIM_H
#define CSERIALSHIM_H

#include <stddef.h>

/// Sets an arbitrary input and output baud rate with termios2 and BOTHER.
/// Returns 0 on success, -1 with errno set on failure.
int sfs_set_custom_baud(int fd, unsigned int baud);

/// Reads back the output baud rate through termios2. Returns -1 with errno on failure.
long sfs_get_baud(int fd);

/// Bytes waiting in the kernel's output queue (TIOCOUTQ). Returns -1 with errno on failure.
int sfs_output_queue(int fd);

/// Bytes waiting in the kernel's input queue (FIONREAD). Returns -1 with errno on failure.
int sfs_input_queue(int fd);

/// Opens a new pseudo-terminal pair without libutil: the master is O_RDWR|O_NOCTTY|O_CLOEXEC,
/// the slave is opened O_RDWR|O_NOCTTY|O_CLOEXEC and set to raw mode. The slave's path is
/// written to `name` (NUL-terminated). Returns 0 on success, -1 with errno on failure.
int sfs_openpty(int *master, int *slave, char *name, size_t name_len);

/// Sets exclusive mode on a tty (TIOCEXCL): later opens by non-root processes fail with EBUSY.
int sfs_set_exclusive(int fd);

struct pollfd;

/// TIOCVHANGUP: hangs up the tty `fd` belongs to for every open descriptor (each then reads
/// end of file), as unplugging a USB adapter does. The virtual cable's unplug.
int sfs_hangup(int fd);

/// poll() with a timeout in nanoseconds (ppoll); a negative timeout waits without limit.
int sfs_poll_nanoseconds(struct pollfd *fds, unsigned long count, long long timeout_ns);

#endif
