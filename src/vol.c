/* SPDX-License-Identifier: MIT */
/* vol.c — volume helpers shared by the layers; see vol.h. */
#include "vol.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "log.h"

int mfs_vol_corrupt(struct mfs_vol *v, const char *func, int line,
		    const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	mfs_log(MFS_LOG_ERR, "corruption: %s (%s:%d)", msg, func, line);
	if (v && !v->error)
		v->error = -EUCLEAN;
	return -EUCLEAN;
}

int mfs_vol_sync_failed(struct mfs_vol *v, int rc, const char *what)
{
	mfs_log(MFS_LOG_ERR, "%s failed: %s; the volume is now read-only",
		what, strerror(-rc));
	if (!v->error)
		v->error = rc;
	v->fatal = true;
	return rc;
}
