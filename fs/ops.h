/*
 * The FUSE low-level operation table of scriptumfs (ops.c). The session's
 * userdata is the struct mount of tree.h.
 */
#ifndef SCRIPTUMFS_OPS_H
#define SCRIPTUMFS_OPS_H

#ifndef FUSE_USE_VERSION
#define FUSE_USE_VERSION FUSE_MAKE_VERSION(3, 14)
#endif
#include <fuse_lowlevel.h>

extern const struct fuse_lowlevel_ops scriptumfs_ops;

#endif
