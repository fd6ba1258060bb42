// SPDX-License-Identifier: MIT
// A connection to libvirtd whose events wake an fd, with libvirt's event loop on a thread of its own.
#include "libvirt.h"

#include <chrono>
#include <libvirt/virterror.h>
#include <mutex>
#include <sys/eventfd.h>
#include <thread>
#include <unistd.h>

namespace vmrd::vmem {

namespace {

// libvirt's default is to print every error on stderr; the broker words
// its own messages (libvirtError) and logs them rate-limited.
void quiet(void *, virErrorPtr) {}

// Events and keepalives need libvirt's event loop running, registered
// before the first connection opens.
bool startEventLoop()
{
	static bool ok = false;
	static std::once_flag once;
	std::call_once(once, [] {
		virSetErrorFunc(nullptr, quiet);
		if (virInitialize() < 0 || virEventRegisterDefaultImpl() < 0)
			return;
		std::thread([] {
			for (;;)
				if (virEventRunDefaultImpl() < 0) // not expected: no spinning on it
					std::this_thread::sleep_for(std::chrono::milliseconds(100));
		}).detach();
		ok = true;
	});
	return ok;
}

using Events = LibvirtConnection::Events;

// Each callback holds the events by a shared_ptr of its own, freed by
// libvirt when it no longer calls back.
void *hold(const std::shared_ptr<Events> &e)
{
	return new std::shared_ptr<Events>(e);
}

void release(void *opaque)
{
	delete static_cast<std::shared_ptr<Events> *>(opaque);
}

void raise(void *opaque, std::atomic<bool> Events::*flag)
{
	Events &e = **static_cast<std::shared_ptr<Events> *>(opaque);
	e.*flag = true;
	const uint64_t one = 1;
	[[maybe_unused]] auto n = ::write(e.fd, &one, sizeof(one));
}

void onClose(virConnectPtr, int, void *opaque)
{
	raise(opaque, &Events::closed);
}

int onLifecycle(virConnectPtr, virDomainPtr, int event, int, void *opaque)
{
	if (event == VIR_DOMAIN_EVENT_STARTED)
		raise(opaque, &Events::started);
	else if (event == VIR_DOMAIN_EVENT_STOPPED || event == VIR_DOMAIN_EVENT_UNDEFINED)
		raise(opaque, &Events::stopped);
	return 0;
}

void onSizeChange(virConnectPtr, virDomainPtr, const char *, unsigned long long, void *opaque)
{
	raise(opaque, &Events::sizeChanged);
}

// A libvirtd that stops answering is found out within 15 s (5 s apart, 3
// unanswered), and the connection closes.
constexpr int keepAliveSeconds = 5;
constexpr unsigned keepAliveCount = 3;

} // namespace

Error libvirtError(const std::string &what)
{
	const char *m = virGetLastErrorMessage();
	return Error{-EIO, what + ": " + (m ? m : "unknown libvirt error")};
}

LibvirtConnection::Events::~Events()
{
	if (fd >= 0)
		::close(fd);
}

Result<std::unique_ptr<LibvirtConnection>> LibvirtConnection::open(const std::string &uri)
{
	if (!startEventLoop())
		return libvirtError("cannot start libvirt's event loop");
	auto events = std::make_shared<Events>();
	events->fd = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (events->fd < 0)
		return Error{-errno, "eventfd failed"};
	virConnectPtr conn = virConnectOpen(uri.c_str());
	if (!conn)
		return libvirtError("cannot connect to libvirt at " + uri + " (is libvirtd running?)");
	virConnectSetKeepAlive(conn, keepAliveSeconds, keepAliveCount);
	// On failure libvirt keeps no callback and frees nothing: ours to free.
	if (void *opaque = hold(events); virConnectRegisterCloseCallback(conn, onClose, opaque, release) < 0)
		release(opaque);
	return std::unique_ptr<LibvirtConnection>(new LibvirtConnection(conn, std::move(events)));
}

LibvirtConnection::LibvirtConnection(virConnectPtr conn, std::shared_ptr<Events> events)
    : conn_(conn), events_(std::move(events))
{
}

LibvirtConnection::~LibvirtConnection()
{
	for (int id : {lifecycle_, sizeChange_})
		if (id >= 0)
			virConnectDomainEventDeregisterAny(conn_, id);
	virConnectUnregisterCloseCallback(conn_, onClose);
	virConnectClose(conn_);
}

LibvirtConnection::Events &LibvirtConnection::events()
{
	uint64_t count;
	[[maybe_unused]] auto n = ::read(events_->fd, &count, sizeof(count));
	return *events_;
}

// An event callback; on failure libvirt keeps nothing and frees nothing.
int LibvirtConnection::follow(virDomainPtr dom, int event, virConnectDomainEventGenericCallback callback)
{
	void *opaque = hold(events_);
	const int id = virConnectDomainEventRegisterAny(conn_, dom, event, callback, opaque, release);
	if (id < 0)
		release(opaque);
	return id;
}

Status LibvirtConnection::watch(virDomainPtr dom)
{
	lifecycle_ = follow(dom, VIR_DOMAIN_EVENT_ID_LIFECYCLE, VIR_DOMAIN_EVENT_CALLBACK(onLifecycle));
	if (lifecycle_ < 0)
		return libvirtError("cannot follow libvirt's domain events");
	if (!dom)
		return Ok{};
	sizeChange_ =
	        follow(dom, VIR_DOMAIN_EVENT_ID_MEMORY_DEVICE_SIZE_CHANGE, VIR_DOMAIN_EVENT_CALLBACK(onSizeChange));
	if (sizeChange_ < 0)
		return libvirtError("cannot follow the domain's memory device size changes");
	return Ok{};
}

} // namespace vmrd::vmem
