/*
 * Running threads followed for the mount: a thread's `events` file shows
 * the ThreadEvents a WatchThread stream has brought since the file was
 * first looked at, and grows while the thread runs (tail -f follows it).
 * Each event also marks the thread's cached metadata stale and tells the
 * kernel to drop what it holds of the thread's changing files; that
 * happens in the watch's own thread, never in one serving a request.
 */
#ifndef SCRIPTUMFS_WATCH_H
#define SCRIPTUMFS_WATCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct mount;
struct watches;

/* How many threads may be followed at once, and how long a watch is kept
 * after its events were last looked at. */
#define WATCH_MAX      256
#define WATCH_IDLE_MS  ((int64_t)10 * 60 * 1000)
#define WATCH_MAX_TEXT ((size_t)16 << 20) /* events kept per thread */

/* se: the FUSE session for invalidations (a struct fuse_session *, or NULL
 * in tests). */
struct watches *watches_new(struct mount *m, void *se);

/* Stops every watch and waits for them. */
void watches_free(struct watches *w);

/* The length the events file of thread id has now (*final set when the
 * thread has ended and the text will not grow); starts following the
 * thread if it is not yet. A thread that has already finished is asked
 * once (its snapshot). */
int watches_size(struct watches *w, const char *id, uint64_t *size, bool *final);

/* The length of the events text if thread id is being (or was) followed,
 * without starting anything: false when it is not. */
bool watches_known(struct watches *w, const char *id, uint64_t *size);

/* Reads the events text at off (the watch must have been started by one of
 * the above): bytes read, 0 at the end of what is known now, or -errno. */
ssize_t watches_read(struct watches *w, const char *id, void *buf, size_t len, uint64_t off);

#endif
