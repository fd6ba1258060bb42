// SPDX-License-Identifier: GPL-2.0-only
/*
 * An emulation of Qualcomm's qti_virtio_mem device for vmrd's test guests:
 * hints plug real memory, hot-plugged from a physical range the guest's
 * kernel was told to leave alone (mem=).  README.md says where it departs
 * from Qualcomm's driver.
 */
#define pr_fmt(fmt) "qti_virtio_mem: " fmt

#include <linux/anon_inodes.h>
#include <linux/bitmap.h>
#include <linux/cdev.h>
#include <linux/device.h>
#include <linux/file.h>
#include <linux/fs.h>
#include <linux/ioport.h>
#include <linux/memory.h>
#include <linux/memory_hotplug.h>
#include <linux/mm.h>
#include <linux/mmzone.h>
#include <linux/module.h>
#include <linux/mutex.h>
#include <linux/oom.h>
#include <linux/sched/mm.h>
#include <linux/slab.h>
#include <linux/uaccess.h>
#include <linux/version.h>
#include <linux/vmstat.h>
#include <linux/workqueue.h>

/* The UAPI, pinned: plugins/gunyah-membuf/qti_virtio_mem.h (build.sh copies it here). */
#include "qti_virtio_mem.h"

static unsigned long long base;
module_param(base, ullong, 0444);
MODULE_PARM_DESC(base, "physical start of the hidden range (memory block aligned)");
static unsigned long long size;
module_param(size, ullong, 0444);
MODULE_PARM_DESC(size, "bytes of the hidden range: the device's maximum (memory block multiple)");

#define RESOURCE_NAME "System RAM (qti_virtio_mem)"
/* The retry timer of virtio-mem, which Qualcomm's device keeps. */
#define RETRY_MIN_MS 50000
#define RETRY_MAX_MS 300000
#define OOM_NOTIFY_PRIORITY 90

struct hint {
	struct list_head kernel_list; /* on kernel_hints when the OOM notifier made it */
	s64 size;
	char name[QTI_VIRTIO_MEM_IOC_MAX_NAME_LEN];
};

static u64 block_size;
static unsigned long nr_blocks;
static int nid;
static struct resource *parent;
static dev_t devno;
static struct class *qvm_class;
static struct cdev qvm_cdev;
static struct device *qvm_device;

/* Protects everything below. */
static DEFINE_MUTEX(lock);
static s64 hint_total;
static unsigned long *added; /* blocks of the hidden range added to Linux */
static unsigned long plugged;
static LIST_HEAD(kernel_hints);
static unsigned int kernel_plugged;
static unsigned int retry_ms = RETRY_MIN_MS;
static void retry_fn(struct work_struct *work);
static DECLARE_DELAYED_WORK(retry_work, retry_fn);

static u64 block_addr(unsigned long i)
{
	return base + i * block_size;
}

/* What the device is asked for: the hints' sum in whole blocks, at most the maximum. */
static u64 requested(s64 total)
{
	return min_t(u64, ALIGN(total, block_size), nr_blocks * block_size);
}

/*
 * Plugs or unplugs blocks until `bytes` are plugged; unplugs the highest
 * blocks first and skips busy ones, as virtio-mem's big block mode does.
 */
static int resize_locked(u64 bytes, mhp_t flags)
{
	unsigned long want = bytes / block_size, i;
	int rc = 0;

	while (plugged < want) {
		i = find_first_zero_bit(added, nr_blocks);
		rc = add_memory_driver_managed(nid, block_addr(i), block_size, RESOURCE_NAME, flags);
		if (rc) {
			pr_warn("adding 0x%llx failed: %d\n", block_addr(i), rc);
			return rc;
		}
		set_bit(i, added);
		plugged++;
	}
	for (i = nr_blocks; i-- > 0 && plugged > want;) {
		if (!test_bit(i, added))
			continue;
		rc = offline_and_remove_memory(block_addr(i), block_size);
		if (rc) {
			pr_debug("removing 0x%llx failed: %d\n", block_addr(i), rc);
			continue;
		}
		clear_bit(i, added);
		plugged--;
	}
	return plugged == want ? 0 : (rc ? rc : -EBUSY);
}

/* An unplug that failed is tried again later, as virtio-mem's timer does. */
static void retry_later_locked(void)
{
	schedule_delayed_work(&retry_work, msecs_to_jiffies(retry_ms));
	retry_ms = min(retry_ms * 2, RETRY_MAX_MS);
}

static void retry_fn(struct work_struct *work)
{
	mutex_lock(&lock);
	if (resize_locked(requested(hint_total), MHP_NONE))
		retry_later_locked();
	else
		retry_ms = RETRY_MIN_MS;
	mutex_unlock(&lock);
}

/*
 * Gives a hint its new size and the device the new total.  Growing is
 * synchronous and all or nothing: -EINVAL when the device cannot plug the
 * whole total (Qualcomm's driver turns every failure into -EINVAL).
 * Shrinking cannot fail: memory that is busy is unplugged later.
 */
static int hint_resize_locked(struct hint *h, s64 new_size, mhp_t flags)
{
	const s64 total = hint_total - h->size + new_size;
	int rc;

	rc = resize_locked(requested(total), flags);
	if (new_size > h->size && (rc || requested(total) != ALIGN(total, block_size))) {
		if (resize_locked(requested(hint_total), MHP_NONE))
			retry_later_locked();
		return -EINVAL;
	}
	if (rc)
		retry_later_locked();
	h->size = new_size;
	hint_total = total;
	return 0;
}

static struct hint *hint_create_locked(const char *name, s64 bytes, mhp_t flags)
{
	struct hint *h = kzalloc(sizeof(*h), GFP_KERNEL);
	int rc;

	if (!h)
		return ERR_PTR(-ENOMEM);
	INIT_LIST_HEAD(&h->kernel_list);
	strscpy(h->name, name[0] ? name : "(none)", sizeof(h->name));
	rc = hint_resize_locked(h, bytes, flags);
	if (rc) {
		kfree(h);
		return ERR_PTR(rc);
	}
	return h;
}

static void hint_release_locked(struct hint *h)
{
	hint_resize_locked(h, 0, MHP_NONE);
	kfree(h);
}

static int hint_file_release(struct inode *inode, struct file *file)
{
	mutex_lock(&lock);
	hint_release_locked(file->private_data);
	mutex_unlock(&lock);
	return 0;
}

static const struct file_operations hint_fops = {
	.owner = THIS_MODULE,
	.release = hint_file_release,
};

static long hint_create_ioctl(struct qti_virtio_mem_ioc_hint_create_arg __user *uarg)
{
	struct qti_virtio_mem_ioc_hint_create_arg arg;
	struct file *file;
	struct hint *h;
	int fd;

	if (copy_from_user(&arg, uarg, sizeof(arg)))
		return -EFAULT;
	if (arg.size <= 0 || arg.reserved0 || arg.reserved1)
		return -EINVAL;
	if (arg.size > nr_blocks * block_size) /* more than the device has */
		return -EINVAL;
	arg.name[sizeof(arg.name) - 1] = '\0';

	mutex_lock(&lock);
	h = hint_create_locked(arg.name, arg.size, MHP_NONE);
	mutex_unlock(&lock);
	if (IS_ERR(h))
		return PTR_ERR(h);
	file = anon_inode_getfile("qti_virtio_mem_hint", &hint_fops, h, O_RDWR);
	if (IS_ERR(file)) {
		mutex_lock(&lock);
		hint_release_locked(h);
		mutex_unlock(&lock);
		return PTR_ERR(file);
	}
	fd = get_unused_fd_flags(O_CLOEXEC);
	if (fd < 0) {
		fput(file); /* releases the hint */
		return fd;
	}
	arg.fd = fd;
	if (copy_to_user(uarg, &arg, sizeof(arg))) {
		put_unused_fd(fd);
		fput(file);
		return -EFAULT;
	}
	fd_install(fd, file);
	return 0;
}

static long qvm_ioctl(struct file *file, unsigned int cmd, unsigned long arg)
{
	if (cmd != QTI_VIRTIO_MEM_IOC_HINT_CREATE)
		return -ENOTTY;
	return hint_create_ioctl((void __user *)arg);
}

static const struct file_operations qvm_fops = {
	.owner = THIS_MODULE,
	.unlocked_ioctl = qvm_ioctl,
	.compat_ioctl = compat_ptr_ioctl,
};

/* The attributes and their formats as Qualcomm's driver has them: sizes in bytes, the rest counts. */
static ssize_t device_block_size_show(struct device *dev, struct device_attribute *attr, char *buf)
{
	return sysfs_emit(buf, "%llu\n", block_size);
}
static DEVICE_ATTR_RO(device_block_size);

static ssize_t max_plugin_threshold_show(struct device *dev, struct device_attribute *attr, char *buf)
{
	return sysfs_emit(buf, "%llu\n", nr_blocks * block_size);
}
static DEVICE_ATTR_RO(max_plugin_threshold);

/* As Qualcomm's driver counts it: the hints' sum in blocks, not what is added to Linux right now. */
static ssize_t device_block_plugged_show(struct device *dev, struct device_attribute *attr, char *buf)
{
	return sysfs_emit(buf, "%llu\n", (u64)ALIGN(READ_ONCE(hint_total), block_size) / block_size);
}
static DEVICE_ATTR_RO(device_block_plugged);

static ssize_t kernel_plugged_show(struct device *dev, struct device_attribute *attr, char *buf)
{
	return sysfs_emit(buf, "%u\n", READ_ONCE(kernel_plugged));
}
static DEVICE_ATTR_RO(kernel_plugged);

/* Releases up to that many kernel-plugged blocks, newest first; asking for more than there are is no error. */
static ssize_t kernel_unplug_store(struct device *dev, struct device_attribute *attr, const char *buf,
				   size_t count)
{
	struct hint *h;
	int n, rc;

	rc = kstrtoint(buf, 0, &n);
	if (rc)
		return rc;
	mutex_lock(&lock);
	while (n-- > 0 && !list_empty(&kernel_hints)) {
		h = list_first_entry(&kernel_hints, struct hint, kernel_list);
		list_del(&h->kernel_list);
		kernel_plugged--;
		hint_release_locked(h);
	}
	mutex_unlock(&lock);
	return count;
}
static DEVICE_ATTR_WO(kernel_unplug);

static struct attribute *qvm_attrs[] = {
	&dev_attr_device_block_size.attr,
	&dev_attr_max_plugin_threshold.attr,
	&dev_attr_device_block_plugged.attr,
	&dev_attr_kernel_plugged.attr,
	&dev_attr_kernel_unplug.attr,
	NULL,
};
ATTRIBUTE_GROUPS(qvm);

/*
 * Out of memory: plug one block by itself when ZONE_MOVABLE is exhausted,
 * as Qualcomm's driver does.  It skips when a plug or unplug holds the lock:
 * that one may be what is allocating.  What adding the block allocates comes
 * from the reserves (an allocation that waited for the OOM killer here would
 * wait for itself), and its memmap from the block itself when the kernel
 * allows it (memory_hotplug.memmap_on_memory=1): the reserves are smaller.
 */
static int oom_notify(struct notifier_block *nb, unsigned long unused, void *parm)
{
	struct zone *z = &NODE_DATA(numa_node_id())->node_zones[ZONE_MOVABLE];
	unsigned long *freed = parm;
	unsigned int noreclaim;
	struct hint *h;

	if (zone_page_state(z, NR_FREE_PAGES) > high_wmark_pages(z) + block_size / PAGE_SIZE)
		return NOTIFY_OK;
	if (!mutex_trylock(&lock))
		return NOTIFY_OK;
	if (hint_total < nr_blocks * block_size) {
		noreclaim = memalloc_noreclaim_save();
		h = hint_create_locked("qvm_oom_notifier", block_size, MHP_MEMMAP_ON_MEMORY);
		memalloc_noreclaim_restore(noreclaim);
		if (IS_ERR(h)) {
			pr_err("the OOM notifier failed to add memory\n");
		} else {
			list_add(&h->kernel_list, &kernel_hints);
			kernel_plugged++;
			*freed += block_size / PAGE_SIZE;
		}
	}
	mutex_unlock(&lock);
	return NOTIFY_OK;
}

static struct notifier_block oom_nb = {
	.notifier_call = oom_notify,
	.priority = OOM_NOTIFY_PRIORITY,
};

/* Claims the hidden range, as virtio-mem claims its region: no /dev/mem, no other driver. */
static int claim_range(void)
{
	parent = __request_region(&iomem_resource, base, size, "qti_virtio_mem",
				  IORESOURCE_SYSTEM_RAM | IORESOURCE_EXCLUSIVE);
	if (!parent) {
		pr_err("cannot claim [0x%llx-0x%llx]: something is there (see /proc/iomem)\n", base,
		       base + size - 1);
		return -EBUSY;
	}
	/* Not busy itself: the blocks added below it are. */
	parent->flags &= ~IORESOURCE_BUSY;
	return 0;
}

static void unclaim_range(void)
{
	release_resource(parent);
	kfree(parent);
}

static int __init qvm_init(void)
{
	int rc;

	block_size = memory_block_size_bytes();
	if (!size || !IS_ALIGNED(base, block_size) || !IS_ALIGNED(size, block_size)) {
		pr_err("base=0x%llx size=0x%llx: both must be multiples of the memory block size 0x%llx, size > 0\n",
		       base, size, block_size);
		return -EINVAL;
	}
	nr_blocks = size / block_size;
	nid = memory_add_physaddr_to_nid(base);
	added = bitmap_zalloc(nr_blocks, GFP_KERNEL);
	if (!added)
		return -ENOMEM;
	rc = claim_range();
	if (rc)
		goto free_bitmap;
	rc = alloc_chrdev_region(&devno, 0, 1, "qti_virtio_mem");
	if (rc)
		goto unclaim;
#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 4, 0)
	qvm_class = class_create("qti_virtio_mem");
#else
	qvm_class = class_create(THIS_MODULE, "qti_virtio_mem");
#endif
	if (IS_ERR(qvm_class)) {
		rc = PTR_ERR(qvm_class);
		goto unregister_region;
	}
	cdev_init(&qvm_cdev, &qvm_fops);
	rc = cdev_add(&qvm_cdev, devno, 1);
	if (rc)
		goto destroy_class;
	qvm_device = device_create_with_groups(qvm_class, NULL, devno, NULL, qvm_groups, "qti_virtio_mem");
	if (IS_ERR(qvm_device)) {
		rc = PTR_ERR(qvm_device);
		goto del_cdev;
	}
	rc = register_oom_notifier(&oom_nb);
	if (rc)
		goto destroy_device;
	pr_info("%lu blocks of 0x%llx bytes from 0x%llx\n", nr_blocks, block_size, base);
	return 0;

destroy_device:
	device_destroy(qvm_class, devno);
del_cdev:
	cdev_del(&qvm_cdev);
destroy_class:
	class_destroy(qvm_class);
unregister_region:
	unregister_chrdev_region(devno, 1);
unclaim:
	unclaim_range();
free_bitmap:
	bitmap_free(added);
	return rc;
}
module_init(qvm_init);

/* Unloading is for a guest whose hints are all closed; memory still added stays added, and claimed. */
static void __exit qvm_exit(void)
{
	unregister_oom_notifier(&oom_nb);
	device_destroy(qvm_class, devno);
	cdev_del(&qvm_cdev);
	class_destroy(qvm_class);
	unregister_chrdev_region(devno, 1);
	mutex_lock(&lock);
	while (!list_empty(&kernel_hints)) {
		struct hint *h = list_first_entry(&kernel_hints, struct hint, kernel_list);

		list_del(&h->kernel_list);
		hint_release_locked(h);
	}
	mutex_unlock(&lock);
	/* Nothing schedules it any more: no hint is left, the notifier is gone. */
	cancel_delayed_work_sync(&retry_work);
	if (plugged) {
		pr_warn("unloading with %lu blocks still added\n", plugged);
		return;
	}
	unclaim_range();
	bitmap_free(added);
}
module_exit(qvm_exit);

MODULE_DESCRIPTION("Emulated Qualcomm qti_virtio_mem on memory hotplug, for vmrd's test guests");
MODULE_LICENSE("GPL");
