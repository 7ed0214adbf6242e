/*
 * The FUSE low-level operations: each takes a request, asks tree.c, and
 * replies. Thin on purpose (libfuse's hello_ll.c is the model); every rule
 * about what exists and what it holds is in tree.c.
 *
 *	$ scriptumfs -o endpoint=http://127.0.0.1:8080 /mnt/s
 *	$ ls -l /mnt/s/threads | head -3
 *	$ jq .status /mnt/s/threads/thr_abc/thread.json
 */
#define FUSE_USE_VERSION FUSE_MAKE_VERSION(3, 14)

#include <errno.h>
#include <fuse_lowlevel.h>
#include <stdlib.h>
#include <string.h>

#include "ops.h"
#include "tree.h"

#define READ_MAX ((size_t)1 << 20)

/*
 * Answers a request with the failure rc (-errno, or 0). An answer that
 * broke the protocol, or a transfer cut short, is EIO to a program
 * (doc/SEMANTICS.md, "Errors"): "Protocol error" would name our problem,
 * not the reader's.
 */
static void
reply_err(fuse_req_t req, int rc)
{
	switch (-rc) {
	case EPROTO:
	case EBADMSG:
	case EMSGSIZE:
	case EREMOTEIO:
	case EPIPE:
		rc = -EIO;
		break;
	}
	fuse_reply_err(req, -rc);
}

static struct mount *
fsm_of(fuse_req_t req)
{
	struct mount *m = fuse_req_userdata(req);

	atomic_fetch_add(&m->requests, 1);
	return m;
}

static void
op_init(void *userdata, struct fuse_conn_info *conn)
{
	(void)userdata;
	/* `ls -l threads/` takes attributes from the listing, always */
	if (conn->capable & FUSE_CAP_READDIRPLUS)
		conn->want |= FUSE_CAP_READDIRPLUS;
	conn->want &= ~FUSE_CAP_READDIRPLUS_AUTO;
	if (conn->capable & FUSE_CAP_ASYNC_READ)
		conn->want |= FUSE_CAP_ASYNC_READ;
	if (conn->capable & FUSE_CAP_PARALLEL_DIROPS)
		conn->want |= FUSE_CAP_PARALLEL_DIROPS;
	/* payload reads are spliced from the cache file */
	if (conn->capable & FUSE_CAP_SPLICE_WRITE)
		conn->want |= FUSE_CAP_SPLICE_WRITE;
	conn->max_readahead = READ_MAX;
	conn->max_read = 0;
	/* also sets how many pages one request may carry: reads of 1 MiB
	 * instead of 128 KiB cost an eighth of the round trips */
	conn->max_write = READ_MAX;
	/* a stuck request must not pile up others behind it */
	conn->max_background = 64;
	conn->congestion_threshold = 48;
}

static void
fill_param(struct fuse_entry_param *p, const struct tree_entry *e)
{
	memset(p, 0, sizeof(*p));
	p->ino = e->ino;
	p->generation = e->generation;
	p->attr = e->attr;
	p->attr_timeout = e->attr_timeout;
	p->entry_timeout = e->entry_timeout;
}

static void
op_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct mount *m = fsm_of(req);
	struct fuse_entry_param p;
	struct tree_entry e;
	int rc = tree_lookup(m, parent, name, &e);

	if (rc == -ENOENT && e.entry_timeout > 0) {
		/* the kernel remembers the name as missing for a while */
		fill_param(&p, &e);
		p.ino = 0;
		fuse_reply_entry(req, &p);
		return;
	}
	if (rc != 0) {
		reply_err(req, rc);
		return;
	}
	fill_param(&p, &e);
	if (fuse_reply_entry(req, &p) != 0)
		recs_forget(m->recs, e.ino, 1); /* the kernel never got it */
}

static void
op_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup)
{
	struct mount *m = fsm_of(req);

	recs_forget(m->recs, ino, nlookup);
	fuse_reply_none(req);
}

static void
op_forget_multi(fuse_req_t req, size_t count, struct fuse_forget_data *forgets)
{
	struct mount *m = fsm_of(req);

	for (size_t i = 0; i < count; i++)
		recs_forget(m->recs, forgets[i].ino, forgets[i].nlookup);
	fuse_reply_none(req);
}

static void
op_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct mount *m = fsm_of(req);
	struct stat st;
	double timeout;
	int rc;

	(void)fi;
	if ((rc = tree_getattr(m, ino, &st, &timeout)) != 0)
		reply_err(req, rc);
	else
		fuse_reply_attr(req, &st, timeout);
}

static void
op_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set, struct fuse_file_info *fi)
{
	struct mount *m = fsm_of(req);
	struct stat st;
	double timeout;
	int rc;

	if (to_set & (FUSE_SET_ATTR_MODE | FUSE_SET_ATTR_UID | FUSE_SET_ATTR_GID)) {
		fuse_reply_err(req, EPERM);
		return;
	}
	if ((rc = tree_getattr(m, ino, &st, &timeout)) != 0) {
		reply_err(req, rc);
		return;
	}
	if (to_set & FUSE_SET_ATTR_SIZE) {
		/* only the writable files can be truncated (O_TRUNC on new) */
		if (!(st.st_mode & 0200)) {
			fuse_reply_err(req, EACCES);
			return;
		}
		if (fi != NULL && (rc = tree_truncate(m, (struct tree_file *)(uintptr_t)fi->fh,
		                                      attr->st_size)) != 0) {
			reply_err(req, rc);
			return;
		}
	}
	/* times are the API's; touching them is accepted and changes nothing */
	fuse_reply_attr(req, &st, timeout);
}

static void
op_readlink(fuse_req_t req, fuse_ino_t ino)
{
	struct mount *m = fsm_of(req);
	char buf[1200];
	int rc;

	if ((rc = tree_readlink(m, ino, buf, sizeof(buf))) != 0)
		reply_err(req, rc);
	else
		fuse_reply_readlink(req, buf);
}

static void
op_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct mount *m = fsm_of(req);
	struct tree_dir *d;
	int rc;

	if ((rc = tree_opendir(m, ino, &d)) != 0) {
		reply_err(req, rc);
		return;
	}
	fi->fh = (uintptr_t)d;
	if (fuse_reply_open(req, fi) != 0)
		tree_closedir(m, d);
}

static void
readdir_common(fuse_req_t req, size_t size, off_t off, struct fuse_file_info *fi, bool plus)
{
	struct mount *m = fsm_of(req);
	struct tree_dir *d = (struct tree_dir *)(uintptr_t)fi->fh;
	char *buf = malloc(size);
	size_t used = 0;
	int rc = 0;

	if (buf == NULL) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	for (size_t i = (size_t)off;; i++) {
		const char *name;
		struct tree_entry e;
		size_t need;

		if ((rc = tree_dir_entry(m, d, i, &name, &e)) != 0)
			break;
		if (plus) {
			struct fuse_entry_param p;

			fill_param(&p, &e);
			need = fuse_add_direntry_plus(req, buf + used, size - used, name, &p,
			                              (off_t)(i + 1));
		} else {
			need = fuse_add_direntry(req, buf + used, size - used, name, &e.attr,
			                         (off_t)(i + 1));
		}
		if (need > size - used)
			break;
		used += need;
		/* "." and ".." do not count as lookups */
		if (plus && i >= 2)
			tree_dir_taken(m, d, i);
	}
	/* an error after some entries: give those; the next call meets it again */
	if (rc < 0 && used == 0)
		reply_err(req, rc);
	else
		fuse_reply_buf(req, buf, used);
	free(buf);
}

static void
op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi)
{
	(void)ino;
	readdir_common(req, size, off, fi, false);
}

static void
op_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi)
{
	(void)ino;
	readdir_common(req, size, off, fi, true);
}

static void
op_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct mount *m = fsm_of(req);

	(void)ino;
	tree_closedir(m, (struct tree_dir *)(uintptr_t)fi->fh);
	fuse_reply_err(req, 0);
}

static void
op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct mount *m = fsm_of(req);
	struct tree_open_flags how;
	struct tree_file *f;
	int rc;

	if ((rc = tree_open(m, ino, fi->flags, &f, &how)) != 0) {
		reply_err(req, rc);
		return;
	}
	fi->fh = (uintptr_t)f;
	fi->direct_io = how.direct_io;
	fi->keep_cache = how.keep_cache;
	fi->nonseekable = how.nonseekable;
	/* a file opened for reading has nothing to flush: close() need not
	 * wait for us (a write may: `new` acts when its writer closes it) */
	fi->noflush = (fi->flags & O_ACCMODE) == O_RDONLY;
	if ((fi->flags & O_TRUNC) && (rc = tree_truncate(m, f, 0)) != 0) {
		tree_release(m, f);
		reply_err(req, rc);
		return;
	}
	if (fuse_reply_open(req, fi) != 0)
		tree_release(m, f);
}

static void
op_create(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
          struct fuse_file_info *fi)
{
	(void)parent;
	(void)name;
	(void)mode;
	(void)fi;
	fsm_of(req);
	/* nothing can be made here but threads, through `new` */
	fuse_reply_err(req, EACCES);
}

static void
on_interrupt(fuse_req_t req, void *data)
{
	(void)req;
	tree_interrupt(data);
}

static void
op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi)
{
	struct mount *m = fsm_of(req);
	struct tree_file *f = (struct tree_file *)(uintptr_t)fi->fh;
	struct payload_where w;
	char *buf;
	ssize_t n;

	(void)ino;
	if (size > READ_MAX)
		size = READ_MAX;
	if ((buf = malloc(size > 0 ? size : 1)) == NULL) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	fuse_req_interrupt_func(req, on_interrupt, f);
	n = tree_read(m, f, buf, size, off, &w);
	if (n < 0) {
		reply_err(req, (int)n);
	} else if (w.n > 0) {
		/* from the memory the payload streams through, held meanwhile */
		fuse_reply_iov(req, w.iov, w.n);
		payload_done(&w); /* not through f: it may be released already */
	} else if (w.fd >= 0) {
		/* from the cache file's pages to the kernel's, with no copy
		 * through ours (spliced where the kernel allows) */
		struct fuse_bufvec bv = FUSE_BUFVEC_INIT((size_t)n);

		bv.buf[0].flags = FUSE_BUF_IS_FD | FUSE_BUF_FD_SEEK;
		bv.buf[0].fd = w.fd;
		bv.buf[0].pos = off;
		fuse_reply_data(req, &bv, 0);
	} else {
		fuse_reply_buf(req, buf, (size_t)n);
	}
	free(buf);
}

static void
op_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size, off_t off,
         struct fuse_file_info *fi)
{
	struct mount *m = fsm_of(req);
	ssize_t n;

	(void)ino;
	n = tree_write(m, (struct tree_file *)(uintptr_t)fi->fh, buf, size, off);
	if (n < 0)
		reply_err(req, (int)n);
	else
		fuse_reply_write(req, (size_t)n);
}

static void
op_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct mount *m = fsm_of(req);

	(void)ino;
	reply_err(req, tree_flush(m, (struct tree_file *)(uintptr_t)fi->fh));
}

static void
op_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct mount *m = fsm_of(req);

	(void)ino;
	tree_release(m, (struct tree_file *)(uintptr_t)fi->fh);
	fuse_reply_err(req, 0);
}

static void
op_fsync(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi)
{
	(void)ino;
	(void)datasync;
	(void)fi;
	fsm_of(req);
	fuse_reply_err(req, 0);
}

static void
op_statfs(fuse_req_t req, fuse_ino_t ino)
{
	struct statvfs sv;

	(void)ino;
	fsm_of(req);
	memset(&sv, 0, sizeof(sv));
	sv.f_bsize = 65536;
	sv.f_frsize = 65536;
	sv.f_namemax = 1024;
	fuse_reply_statfs(req, &sv);
}

const struct fuse_lowlevel_ops scriptumfs_ops = {
    .init = op_init,
    .lookup = op_lookup,
    .forget = op_forget,
    .forget_multi = op_forget_multi,
    .getattr = op_getattr,
    .setattr = op_setattr,
    .readlink = op_readlink,
    .opendir = op_opendir,
    .readdir = op_readdir,
    .readdirplus = op_readdirplus,
    .releasedir = op_releasedir,
    .open = op_open,
    .create = op_create,
    .read = op_read,
    .write = op_write,
    .flush = op_flush,
    .release = op_release,
    .fsync = op_fsync,
    .statfs = op_statfs,
};
