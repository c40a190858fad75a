/* metrics.h - GET /metrics: the Prometheus text exposition (format 0.0.4)
 * of agentd/API.md "Metrics", from a snapshot (gauges) and the model's
 * counters from the events stream. */
#ifndef ARIQ_AGENTD_METRICS_H
#define ARIQ_AGENTD_METRICS_H

#include <stddef.h>
#include <stdio.h>

#include "api.h"
#include "model.h"

/* Renders the exposition. Returns a malloc'd text (yours) with its length
 * in *len, or NULL (out of memory). a and s are borrowed. */
char *metrics_render(const api_ctx *a, const model_snap *s, size_t *len);

/* Writes v as a label value, escaped (\\, \", \n), into f. */
void metrics_label(FILE *f, const char *v);

#endif
