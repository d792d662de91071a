/* SPDX-License-Identifier: MIT */
/* vol.c — volume helpers shared by the layers; see vol.h. */
#include "vol.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>

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
