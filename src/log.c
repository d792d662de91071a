/* SPDX-License-Identifier: MIT */
/* log.c — see log.h. */
#include "log.h"

#include <stdio.h>

static const char *progname = "mmapfs";
static void (*log_sink)(int level, const char *msg);
static int log_max = MFS_LOG_INFO;

void mfs_log_set_progname(const char *name)
{
	progname = name;
}

const char *mfs_log_progname(void)
{
	return progname;
}

void mfs_log_set_sink(void (*sink)(int level, const char *msg))
{
	log_sink = sink;
}

void (*mfs_log_get_sink(void))(int level, const char *msg)
{
	return log_sink;
}

void mfs_log_set_level(int max_level)
{
	log_max = max_level;
}

void mfs_log(int level, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;

	if (level > log_max)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (log_sink)
		log_sink(level, msg);
	else
		fprintf(stderr, "%s: %s\n", progname, msg);
}
