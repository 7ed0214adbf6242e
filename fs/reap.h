/*
 * Keeping the inode table bounded: the kernel decides when it forgets an
 * inode, so when more thread records are held than max_threads, the oldest
 * unused ones are named to the kernel as stale directory entries; it drops
 * them (and what lies under them) and sends the forgets that free the
 * records. `find` over 100,000 threads then holds about max_threads.
 */
#ifndef SCRIPTUMFS_REAP_H
#define SCRIPTUMFS_REAP_H

struct mount;
struct reaper;

/* Starts the reaper's thread; se is the struct fuse_session. NULL when it
 * cannot be started. */
struct reaper *reaper_start(struct mount *m, void *se);

/* Stops it and waits. NULL is fine. */
void reaper_stop(struct reaper *r);

#endif
