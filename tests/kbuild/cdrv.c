// SPDX-License-Identifier: GPL-2.0
/*
 * cdrv.c: a small block driver as a run's custom workload (run.custom.function:
 * "cdrv.c:submit_loop"), written for hwemu's tests. Each task is a submitter with a
 * queue of its own: it takes requests from a mempool with GFP_NOIO (it must not
 * recurse into I/O to get memory, and must always make progress), fills them and
 * queues them; when the queue is full, or the work is done, the "disk" raises its
 * completion interrupt, whose handler ends every queued request in hard-IRQ context
 * and gives it back with mempool_free().
 *
 * The pool is the run's (run.pools, name in args.pool, default "requests"); built
 * with -DCDRV_OWN_POOL the driver makes a slab pool of its own instead. The run's
 * args: requests (per task), depth (queue length), latency_ms (between interrupts),
 * plant_uaf (1: the completion reads a request after freeing it).
 * Counters: submitted, completed, io_errors, in_irq.
 * Lines the tests look for are marked with a "cdrv:" comment.
 */
#include <linux/delay.h>
#include <linux/errno.h>
#include <linux/gfp.h>
#include <linux/hardirq.h>
#include <linux/list.h>
#include <linux/mempool.h>
#include <linux/printk.h>
#include <linux/slab.h>
#include <linux/spinlock.h>
#include <linux/string.h>
#include <hwemu/kernel.h>
#include <hwemu/workload.h>

struct cdrv_request {
	struct list_head queue;
	u64 sector;
	u32 len;
	u32 check;
	u8 data[64];
};

struct cdrv {
	spinlock_t lock;
	struct list_head pending;
	struct mempool *pool;
	struct kmem_cache *cache;	/* CDRV_OWN_POOL only */
	int queued;
	bool plant_uaf;
	long completed;
	long completed_in_irq;
	long io_errors;
	long bytes;
};

static u32 cdrv_checksum(const struct cdrv_request *rq)
{
	u32 sum = (u32)rq->sector * 2654435761u;
	unsigned int i;

	for (i = 0; i < sizeof(rq->data); i++)
		sum = (sum << 5) + sum + rq->data[i];
	return sum;
}

static void cdrv_end_request(struct cdrv *dev, struct cdrv_request *rq)
{
	if (rq->check != cdrv_checksum(rq))
		dev->io_errors++;
	if (!dev->plant_uaf)
		dev->bytes += rq->len;
	mempool_free(rq, dev->pool);
	if (dev->plant_uaf)
		dev->bytes += rq->len;	/* cdrv: use after free */
}

/* The completion interrupt: end every queued request. Hard-IRQ context. */
unsigned long cdrv_irq(unsigned long data)
{
	struct cdrv *dev = (struct cdrv *)data;
	unsigned long flags;
	unsigned long done = 0;

	spin_lock_irqsave(&dev->lock, flags);
	while (!list_empty(&dev->pending)) {
		struct cdrv_request *rq =
			list_first_entry(&dev->pending, struct cdrv_request, queue);

		list_del(&rq->queue);
		dev->queued--;
		cdrv_end_request(dev, rq);
		done++;
	}
	dev->completed += done;
	if (in_hardirq())
		dev->completed_in_irq += done;
	spin_unlock_irqrestore(&dev->lock, flags);
	return done;
}

static int cdrv_submit(struct cdrv *dev, u64 sector)
{
	struct cdrv_request *rq = mempool_alloc(dev->pool, GFP_NOIO);
	unsigned long flags;

	if (!rq)	/* never with GFP_NOIO: the pool waits for its reserve */
		return -ENOMEM;
	rq->sector = sector;
	rq->len = 512;
	memset(rq->data, (int)(sector & 0xff), sizeof(rq->data));
	rq->check = cdrv_checksum(rq);

	spin_lock_irqsave(&dev->lock, flags);
	list_add_tail(&rq->queue, &dev->pending);
	dev->queued++;
	spin_unlock_irqrestore(&dev->lock, flags);
	return 0;
}

/* The disk: after its latency, one interrupt completes what is queued. */
static void cdrv_kick(struct cdrv *dev, unsigned int latency_ms)
{
	if (latency_ms)
		msleep(latency_ms);
	hwemu_run_in_interrupt(cdrv_irq, (unsigned long)dev, false);
}

static struct cdrv *cdrv_create(void)
{
	struct cdrv *dev = kzalloc(sizeof(*dev), GFP_KERNEL);

	if (!dev)
		return NULL;
	spin_lock_init(&dev->lock);
	INIT_LIST_HEAD(&dev->pending);
	dev->plant_uaf = hwemu_arg("plant_uaf", 0) != 0;
#ifdef CDRV_OWN_POOL
	dev->cache = kmem_cache_create("cdrv_request", sizeof(struct cdrv_request), 0, 0,
				       NULL);
	if (dev->cache)
		dev->pool = mempool_create_slab_pool(hwemu_arg("min_nr", 4), dev->cache);
	if (!dev->pool) {
		kmem_cache_destroy(dev->cache);
		kfree(dev);
		return NULL;
	}
#else
	dev->pool = hwemu_pool("requests");
	if (!dev->pool) {
		pr_err("cdrv: the run has no pool \"requests\"\n");
		kfree(dev);
		return NULL;
	}
#endif
	return dev;
}

static void cdrv_destroy(struct cdrv *dev)
{
	BUG_ON(!list_empty(&dev->pending));
#ifdef CDRV_OWN_POOL
	mempool_destroy(dev->pool);
	kmem_cache_destroy(dev->cache);
#endif
	kfree(dev);
}

/* One submitter task: `requests` requests, at most `depth` queued at a time. */
int submit_loop(void)
{
	long requests = hwemu_arg("requests", 200);
	int depth = hwemu_arg("depth", 8);
	unsigned int latency_ms = hwemu_arg("latency_ms", 1);
	struct cdrv *dev = cdrv_create();
	long sector;
	int err = 0;

	if (!dev)
		return -ENOMEM;
	for (sector = 0; sector < requests && !hwemu_stopping(); sector++) {
		err = cdrv_submit(dev, sector);
		if (err)
			break;
		hwemu_count("submitted", 1);
		if (READ_ONCE(dev->queued) >= depth)
			cdrv_kick(dev, latency_ms);
	}
	if (dev->queued)
		cdrv_kick(dev, latency_ms);

	hwemu_count("completed", dev->completed);
	hwemu_count("in_irq", dev->completed_in_irq);
	hwemu_count("io_errors", dev->io_errors);
	pr_info("cdrv: %ld requests completed, %ld bytes\n", dev->completed, dev->bytes);
	cdrv_destroy(dev);
	return err;
}
