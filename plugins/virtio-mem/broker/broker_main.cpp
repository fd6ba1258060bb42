// SPDX-License-Identifier: MIT
// vmrd-broker's command line.
#include <iostream>
#include <sysexits.h>

#include <boost/program_options.hpp>

#include "broker.h"
#include "cli.h"
#include "log.h"

namespace po = boost::program_options;
using namespace vmrd;

int main(int argc, char **argv)
{
	std::string config = VMRD_SYSCONFDIR "/vmrd/broker.yaml";
	bool check = false;
	po::options_description desc("Usage: vmrd-broker [--config FILE] [--check-config]\n\n"
	                             "Serves the vmrd daemons in guests: sets each VM's virtio-mem requested-size\n"
	                             "through QMP within the range the host allows.\n\nOptions");
	// clang-format off
	desc.add_options()
		("config,c", po::value<std::string>(&config), "configuration file (default " VMRD_SYSCONFDIR "/vmrd/broker.yaml)")
		("check-config", po::bool_switch(&check), "validate the config and exit (78 on error)")
		("help,h", "print this help, exit");
	// clang-format on
	po::variables_map vm;
	if (auto code = parseCommandLine(argc, argv, "vmrd-broker", desc, desc, {}, vm))
		return *code;
	auto c = vmem::loadBrokerConfig(config);
	if (!c) {
		logError(c.error().message);
		return EX_CONFIG;
	}
	if (check) {
		std::cout << "config " << config << " is valid: " << c->vms.size() << " VM(s)\n";
		return 0;
	}
	setLogLevel(c->logLevel);
	return vmem::runBroker(*c);
}
