/*
 * list.h - the intrusive doubly-linked list every module uses for a set it adds to and
 * removes from in any order (streams of the HTTP server, clients of the event hub, webhook
 * attempts in flight): an element carries its own links, members named prev and next; a list
 * is a pointer to its first element, NULL when empty. Adding is at the front, removing any
 * element is O(1), and walking is a plain `for (e = head; e; e = e->next)`.
 *
 * Macros, because C has no generics: they work on any struct with prev and next members of
 * its own type. Each argument is evaluated more than once: pass plain lvalues. Locking is the
 * caller's.
 */
#ifndef CP_CORE_LIST_H
#define CP_CORE_LIST_H

/* Puts e (in no list) at the front of the list head. */
#define LIST_PUSH(head, e)                  \
	do {                                \
		(e)->prev = NULL;           \
		(e)->next = (head);         \
		if ((head))                 \
			(head)->prev = (e); \
		(head) = (e);               \
	} while (0)

/* Takes e out of the list head; e is then in no list (its links are NULL). */
#define LIST_UNLINK(head, e)                         \
	do {                                         \
		if ((e)->prev)                       \
			(e)->prev->next = (e)->next; \
		else                                 \
			(head) = (e)->next;          \
		if ((e)->next)                       \
			(e)->next->prev = (e)->prev; \
		(e)->prev = (e)->next = NULL;        \
	} while (0)

#endif
