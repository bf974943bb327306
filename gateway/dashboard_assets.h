/* dashboard_assets.h — the dashboard's files, embedded at build time by gateway/dashboard/embed.py
 * (private to gateway/). */
#ifndef LH_GW_DASHBOARD_ASSETS_H
#define LH_GW_DASHBOARD_ASSETS_H

#include <stddef.h>

typedef struct gw_asset {
	const char *name;         /* "app.js" */
	const char *content_type; /* "text/javascript; charset=utf-8" */
	const unsigned char *data;
	size_t len;
	const char *etag; /* quoted sha256 prefix */
} gw_asset_t;

/* Ends with a {NULL} entry. */
extern const gw_asset_t gw_assets[];

#endif
