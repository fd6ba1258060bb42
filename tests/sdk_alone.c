/* SPDX-License-Identifier: MIT */
/* The SDK header must compile alone, first, as strict C99. */
#include <vmrd/plugin.h>

int vmrd_sdk_alone_c(void);
int vmrd_sdk_alone_c(void)
{
	return (int)sizeof(struct vmrd_backend_ops);
}
