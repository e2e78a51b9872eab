/*
 * The revocation fan-out and resynchronisation of wsgate's Redis store
 * (src/redis/revocations.rs), as a model for the spin model checker.
 *
 *   spin -a revocations.pml && gcc -O2 -o pan pan.c && ./pan -m200000
 *
 * Processes revoke; Redis keeps the durable records (a set), a sequence
 * counter and a stream it trims to its last SLEN entries; connections drop
 * and come back; Redis restarts empty. Each process has a local copy, a
 * position in the stream and, per revocation, a live socket it covers (and
 * a bystander no revocation covers). Its tail, once connected, resyncs in
 * the steps the code takes (position first, then the records, then the
 * records Redis lost written back, then every socket checked), any of
 * which a fault may interrupt; then it reads entries in order, and a gap in
 * the numbering sends it back to resync.
 *
 * Checked:
 * - safety: no socket is closed that matches no revocation made (the
 *   bystander never; a revocation's socket only once it was made);
 * - liveness, as a final state: once the faults and revocations stop
 *   (`quiet`), every process reconnects and catches up, and then every
 *   revocation acknowledged to its caller, and every revocation that closed
 *   a socket anywhere, has closed its socket on every process. A process
 *   that could never catch up shows as an invalid end state.
 *
 * A revocation's script may run while its reply is lost (a command
 * timeout): `revoke()` then fails and the revoking process closes none of
 * its sockets itself. Each stream entry names its writer; the tail of the
 * writer applies it like anyone else's, notice and all, so its own sockets
 * close from there.
 *
 * Four broken variants show the properties have teeth; each must fail:
 * -DRECORDS_FIRST (the resync reads the records before the stream
 * position), -DNO_WRITE_BACK (nothing written back after a restart),
 * -DNO_GAP_CHECK (entries applied whatever their numbering),
 * -DOWN_NO_NOTICE (a process's own entries update its copy but close none
 * of its sockets, as the code once did: right only while no reply is
 * lost). `model/check` runs all five.
 *
 * Staleness (closing every socket 1011 while contact is lost) is left out:
 * it only closes more, and the property is about what must close.
 */

#define NP 2        /* processes */
#define NR 2        /* revocations (bits) */
#define SLEN 2      /* stream entries Redis keeps */
#define MAXREV 3    /* revocations made at most */
#ifndef MAXFAULT
#define MAXFAULT 3  /* dropped connections and restarts at most */
#endif
#ifndef MAXLOST
#define MAXLOST 0   /* revocation replies lost at most */
#endif

byte records;             /* Redis: durable records, a bit per revocation */
byte seq;                 /* Redis: the last number given */
byte slen;                /* Redis: stream entries kept, oldest first */
byte sr[SLEN];            /*   their revocations */
byte ss[SLEN];            /*   their numbers */
#ifdef OWN_NO_NOTICE
byte so[SLEN];            /*   their writers (read only by the broken
                             variant: the protocol itself ignores them,
                             and they would only multiply the states) */
#define WRITER(i, w) so[i] = w
#else
#define WRITER(i, w) skip
#endif

bool up[NP];              /* the process's tail is connected */
byte phase[NP];           /* 0 reading, 1..4 the resync's steps */
byte lcopy[NP];           /* the local copy */
byte pos[NP];             /* the last number seen */
byte closed[NP];          /* sockets closed (a bit per revocation) */
bool bystander_closed[NP];

byte made;                /* revocations Redis accepted */
byte acked;               /* those whose reply reached the revoking process */
byte nlost;               /* replies lost */
byte nrev;
byte nfault;
bool quiet;               /* no more revocations or faults */
byte finished;

/* The revoke script, in one step: record, number, append (trim); the
   entry names its writer w. */
inline publish(rv, w) {
  records = records | rv;
  seq++;
  if
  :: slen < SLEN -> sr[slen] = rv; ss[slen] = seq; WRITER(slen, w); slen++
  :: else ->
     sr[0] = sr[1]; ss[0] = ss[1];
#ifdef OWN_NO_NOTICE
     so[0] = so[1];
#endif
     sr[SLEN - 1] = rv; ss[SLEN - 1] = seq; WRITER(SLEN - 1, w)
  fi
}

inline last_number(n) {
  if
  :: slen == 0 -> n = 0
  :: else -> n = ss[slen - 1]
  fi
}

/* Process q is connected, past its resync, and has read every entry. */
#define settled(q) (up[q] && phase[q] == 0 && (slen == 0 || ss[slen - 1] <= pos[q]))

proctype Node(byte p) {
  byte rv, i, n, missing;
  do
  /* A revocation made here: the script, then, when its reply comes, the
     local copy and the process's own sockets (the registry's apply).
     When the reply is lost, the script ran but nothing more happens here.
     Fails while down. */
  :: atomic {
       (!quiet && up[p] && nrev < MAXREV) ->
       if
       :: rv = 1
       :: rv = 2
       fi;
       nrev++;
       publish(rv, p);
       made = made | rv;
       if
       :: acked = acked | rv; lcopy[p] = lcopy[p] | rv; closed[p] = closed[p] | rv
       :: nlost < MAXLOST -> nlost++
       fi
     }
  /* The connection drops (killed, stalled past the heartbeat). */
  :: atomic { (!quiet && up[p] && nfault < MAXFAULT) -> nfault++; up[p] = false }
  /* It comes back: resync from the first step. */
  :: atomic { (!up[p]) -> up[p] = true; phase[p] = 1 }
#ifndef RECORDS_FIRST
  /* Resync, step 1: the stream position, read first. */
  :: atomic { up[p] && phase[p] == 1 -> last_number(n); pos[p] = n; phase[p] = 2 }
  /* Step 2: every durable record into the local copy. */
  :: atomic { up[p] && phase[p] == 2 -> lcopy[p] = lcopy[p] | records; phase[p] = 3 }
#else
  /* The order the code must not take: records, then the position. */
  :: atomic { up[p] && phase[p] == 1 -> lcopy[p] = lcopy[p] | records; phase[p] = 2 }
  :: atomic { up[p] && phase[p] == 2 -> last_number(n); pos[p] = n; phase[p] = 3 }
#endif
  /* Step 3: what Redis lost (a restart), written back, one by one. */
  :: atomic {
       up[p] && phase[p] == 3 ->
       missing = lcopy[p] & ~records;
#ifdef NO_WRITE_BACK
       missing = 0;
#endif
       if
       :: missing & 1 -> publish(1, p)
       :: missing & 2 -> publish(2, p)
       :: missing == 0 -> phase[p] = 4
       fi
     }
  /* Step 4: every live socket checked against the local copy. */
  :: atomic {
       up[p] && phase[p] == 4 ->
       closed[p] = closed[p] | lcopy[p];
       phase[p] = 0
     }
  /* Reading: the next entry after the position; a gap means resync. */
  :: atomic {
       up[p] && phase[p] == 0 && slen > 0 && ss[slen - 1] > pos[p] ->
       i = 0;
       do
       :: i < slen && ss[i] <= pos[p] -> i++
       :: else -> break
       od;
       if
#ifndef NO_GAP_CHECK
       :: ss[i] != pos[p] + 1 -> phase[p] = 1
#endif
       :: else ->
          pos[p] = ss[i];
          lcopy[p] = lcopy[p] | sr[i];
#ifdef OWN_NO_NOTICE
          if
          :: so[i] != p -> closed[p] = closed[p] | sr[i]
          :: else -> skip
          fi
#else
          closed[p] = closed[p] | sr[i]
#endif
       fi
     }
  /* Quiet, and every process connected, past its resync and caught up
     with the stream: nothing can happen any more (no process has anything
     left to write back), so the run ends here and the final state is
     checked. */
  :: atomic {
       quiet && settled(0) && settled(1) ->
       finished++;
       break
     }
  od
}

/* Redis restarts empty: every connection drops. */
active proctype Redis() {
  byte p;
  do
  :: atomic {
       (!quiet && nfault < MAXFAULT) ->
       nfault++;
       records = 0; seq = 0; slen = 0;
       p = 0;
       do
       :: p < NP -> up[p] = false; p++
       :: else -> break
       od
     }
  :: quiet -> break
  od
}

active proctype Quiet() {
  quiet = true
}

init {
  byte p;
  atomic {
    p = 0;
    do
    :: p < NP -> up[p] = true; phase[p] = 1; run Node(p); p++
    :: else -> break
    od
  }
  finished == NP;
  p = 0;
  do
  :: p < NP ->
     /* every revocation acknowledged closed its socket, */
     assert((acked & ~closed[p]) == 0);
     /* and so did every revocation that closed one anywhere (one whose
        reply was lost, and that Redis lost before anyone read it, may
        close nowhere: its caller was told it failed), */
     assert(((closed[0] | closed[1]) & ~closed[p]) == 0);
     /* and nothing else was closed */
     assert((closed[p] & ~made) == 0);
     assert(!bystander_closed[p]);
     p++
  :: else -> break
  od
}
