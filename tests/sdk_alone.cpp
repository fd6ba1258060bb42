// SPDX-License-Identifier: MIT
// The SDK header must compile alone, first, as strict C++17.
#include <vmrd/plugin.h>

int vmrdSdkAloneCxx();
int vmrdSdkAloneCxx()
{
	return static_cast<int>(sizeof(vmrd_backend_ops));
}
