/* SPDX-License-Identifier: GPL-2.0 */
/*
 * What every in-VM test includes: the harness (ktap.h: KTAP output,
 * exit codes, children and pipes) and the KSM helpers (ksm_lib.h).
 */
#ifndef KTEST_H
#define KTEST_H

#include "ktap.h"
#include "ksm_lib.h"

#endif /* KTEST_H */
