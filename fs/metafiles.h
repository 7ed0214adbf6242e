/*
 * The files of .scriptumfs/ (see metafiles.c), for tree.c.
 */
#ifndef SCRIPTUMFS_METAFILES_H
#define SCRIPTUMFS_METAFILES_H

#include <stddef.h>
#include <stdint.h>

struct mount;

/* The bytes of .scriptumfs/ file ino (INO_META_ERRORS, _STATS or _CONFIG)
 * as they are now, a new string in *out (free() it) of *len bytes: 0,
 * -ENOENT for another inode, or -ENOMEM. */
int metafile_render(struct mount *m, uint64_t ino, char **out, size_t *len);

#endif
