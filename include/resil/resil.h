/* resil/resil.h - everything: include this one header to use libresil.
 * Each module's header documents its functions, ownership, errors and thread
 * and process safety; docs/threading.md summarises the latter. */
#ifndef RESIL_RESIL_H
#define RESIL_RESIL_H

#include "resil/common.h"
#include "resil/cancel.h"
#include "resil/clock.h"
#include "resil/retry.h"
#include "resil/json.h"
#include "resil/files.h"
#include "resil/proc.h"
#include "resil/breaker.h"
#include "resil/guard.h"
#include "resil/metrics.h"
#include "resil/metrics_dir.h"
#include "resil/escalation.h"

#endif /* RESIL_RESIL_H */
