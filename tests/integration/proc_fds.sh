# fds PID: the count of PID's open fds (/proc/PID/fd), once two reads 50 ms
# apart agree (a connection just closed on one side may still be open on
# the other for a moment). Sourced by cli_fds.sh and bench/soak.sh.
fds() {
	a=$(ls /proc/"$1"/fd | wc -l)
	for _ in $(seq 40); do
		sleep 0.05
		b=$(ls /proc/"$1"/fd | wc -l)
		[ "$a" = "$b" ] && break
		a=$b
	done
	echo "$a"
}
