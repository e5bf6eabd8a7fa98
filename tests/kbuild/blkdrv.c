// SPDX-License-Identifier: GPL-2.0
/*
 * blkdrv.c: a small block driver of the kind that keeps its requests in a mempool,
 * written for hwemu's tests. Requests come from a slab cache behind a pool, so that
 * submission (GFP_NOIO: no recursion into the block layer) always makes progress;
 * they are queued under a spinlock and completed in hard-IRQ context, which gives
 * them back to the pool.
 *
 * Built with -DPLANT_UAF, the completion reads a request after freeing it.
 * Lines the tests look for are marked with a "blkdrv:" comment.
 */
#include "kdrv.h"

struct request {
	struct list_head queue;
	u64 sector;
	u32 len;
	u32 tag;
	int status;
	u8 payload[60];		/* the request is 96 bytes */
};

struct blkdrv {
	spinlock_t lock;
	struct list_head pending;
	struct kmem_cache *cache;
	mempool_t *pool;
	long submitted;
	long completed;
	long completed_in_irq;
	long bytes;
	u32 next_tag;
};

struct blkdrv *blkdrv_create(int min_nr)
{
	struct blkdrv *dev = kzalloc(sizeof(*dev), GFP_KERNEL);

	if (!dev)
		return NULL;
	spin_lock_init(&dev->lock);
	INIT_LIST_HEAD(&dev->pending);
	dev->cache = kmem_cache_create("blkdrv_request", sizeof(struct request), 0, 0, NULL);
	if (!dev->cache)
		goto free_dev;
	dev->pool = mempool_create_slab_pool(min_nr, dev->cache);
	if (!dev->pool)
		goto free_cache;
	pr_info("blkdrv: %d requests in reserve\n", min_nr);
	return dev;
free_cache:
	kmem_cache_destroy(dev->cache);
free_dev:
	kfree(dev);
	return NULL;
}

static void blkdrv_queue(struct blkdrv *dev, struct request *rq)
{
	unsigned long flags;

	spin_lock_irqsave(&dev->lock, flags);
	rq->tag = dev->next_tag++;
	list_add_tail(&rq->queue, &dev->pending);
	dev->submitted++;
	spin_unlock_irqrestore(&dev->lock, flags);
}

/* Queue one request for `len` bytes at `sector`; its tag, or -ENOMEM. */
long blkdrv_submit(struct blkdrv *dev, unsigned long sector, unsigned int len)
{
	struct request *rq = mempool_alloc(dev->pool, GFP_NOIO);

	if (!rq)	/* never, with GFP_NOIO: it waits for the reserve */
		return -ENOMEM;
	rq->sector = sector;
	rq->len = len;
	rq->status = 0;
	rq->payload[0] = (u8)sector;
	blkdrv_queue(dev, rq);
	return rq->tag;
}

/* The same request taken from the pool's reserve (so that its free refills it). */
long blkdrv_submit_reserved(struct blkdrv *dev, unsigned long sector, unsigned int len)
{
	struct request *rq = mempool_alloc_preallocated(dev->pool);

	if (!rq)
		return -ENOMEM;
	rq->sector = sector;
	rq->len = len;
	rq->status = 0;
	blkdrv_queue(dev, rq);
	return rq->tag;
}

static void blkdrv_end_request(struct blkdrv *dev, struct request *rq)
{
	mempool_free(rq, dev->pool);
#ifdef PLANT_UAF
	dev->bytes += rq->len;	/* blkdrv: use after free */
#endif
}

/* The completion interrupt: end every queued request. Hard-IRQ context. */
int blkdrv_complete(struct blkdrv *dev)
{
	unsigned long flags;
	int done = 0;

	WARN_ON(!in_hardirq());	/* blkdrv: completion outside hard IRQ */
	spin_lock_irqsave(&dev->lock, flags);
	while (!list_empty(&dev->pending)) {
		struct request *rq = list_first_entry(&dev->pending, struct request, queue);

		list_del(&rq->queue);
#ifndef PLANT_UAF
		dev->bytes += rq->len;
#endif
		blkdrv_end_request(dev, rq);
		dev->completed++;
		done++;
	}
	if (in_hardirq())
		dev->completed_in_irq += done;
	spin_unlock_irqrestore(&dev->lock, flags);
	return done;
}

long blkdrv_submitted(struct blkdrv *dev) { return dev->submitted; }
long blkdrv_completed(struct blkdrv *dev) { return dev->completed; }
long blkdrv_completed_in_irq(struct blkdrv *dev) { return dev->completed_in_irq; }
long blkdrv_bytes(struct blkdrv *dev) { return dev->bytes; }
int blkdrv_reserve(struct blkdrv *dev) { return respool_curr_nr(dev->pool); }
int blkdrv_in_hardirq(void) { return in_hardirq(); }

void blkdrv_destroy(struct blkdrv *dev)
{
	BUG_ON(!list_empty(&dev->pending));	/* blkdrv: destroyed with requests queued */
	mempool_destroy(dev->pool);
	kmem_cache_destroy(dev->cache);
	kfree(dev);
}

/* A driver bug of the other kind: a pointer that was never one. */
int blkdrv_wild(unsigned long addr)
{
	return *(volatile int *)addr;	/* blkdrv: wild pointer */
}
