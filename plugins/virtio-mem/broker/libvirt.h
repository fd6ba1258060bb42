// SPDX-License-Identifier: MIT
// A connection to libvirtd whose events (a domain started or stopped, a device's size changed, libvirtd gone) wake an
// fd.
#pragma once

#include <atomic>
#include <libvirt/libvirt.h>
#include <memory>
#include <string>

#include "result.h"

namespace vmrd::vmem {

// "WHAT: libvirt's message for the last failed call on this thread".
Error libvirtError(const std::string &what);

// libvirt delivers events and keepalives on one thread of the broker's,
// started with the first connection.  Each connection is used by one
// thread (a DeviceLink's or discovery's); libvirt calls block that thread
// only.
class LibvirtConnection
{
public:
	// What happened since takeEvents() last asked, set on libvirt's thread.
	struct Events {
		std::atomic<bool> sizeChanged{false};
		std::atomic<bool> started{false}; // a domain started
		std::atomic<bool> stopped{false}; // a watched domain stopped or went away
		std::atomic<bool> closed{false};  // libvirtd closed the connection
		int fd = -1;                      // an eventfd, poked by each
		~Events();
	};

	static Result<std::unique_ptr<LibvirtConnection>> open(const std::string &uri);
	~LibvirtConnection();
	LibvirtConnection(const LibvirtConnection &) = delete;
	LibvirtConnection &operator=(const LibvirtConnection &) = delete;

	virConnectPtr get() const { return conn_; }
	// Readable when something happened; see events().
	int eventFd() const { return events_->fd; }
	// Reads the fd; the flags stay set until the caller clears them.
	Events &events();
	bool closed() const { return events_->closed; }
	// Follows `dom`'s size changes and its end; with no domain, every
	// domain's start (and end).
	Status watch(virDomainPtr dom);

private:
	LibvirtConnection(virConnectPtr conn, std::shared_ptr<Events> events);
	int follow(virDomainPtr dom, int event, virConnectDomainEventGenericCallback callback);

	virConnectPtr conn_;
	std::shared_ptr<Events> events_;
	int lifecycle_ = -1, sizeChange_ = -1; // callback ids
};

} // namespace vmrd::vmem
