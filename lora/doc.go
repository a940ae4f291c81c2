// Package lora carries ferry over LoRa serial modems: the airtime rules
// of the radio law, the modems' serial protocols, and (later) a link
// layer that the session protocol of package carriers runs over.
//
// Most callers need two things: [TimeOnAir], the Semtech formula that
// says how long a frame occupies the channel, and a modem driver —
// [NewRNode] for RNode firmware (KISS framing) or [NewRF95] for
// rf95modem (AT commands) — each over an [io.ReadWriter] that cmd/ferry
// opens (github.com/tarm/serial).
//
// # Airtime
//
// A [Region] holds the law: EU868 allows 1 % of each hour on air (10 %
// in the 869.4–869.65 MHz sub-band), US915 caps each frame at 400 ms of
// dwell. A [Budget] keeps the airtime of every sliding window within the
// region's duty cycle; [Budget.Acquire] waits (on the time package's
// clock, which testing/synctest makes virtual) until a frame fits.
//
// # Modems
//
// Both drivers implement [Modem]: Send one frame of at most
// [MaxFrame] bytes, Recv one [Packet] with its RSSI and SNR. Errors the
// modem reports wrap [ErrModem]; a modem that stops answering gives an
// error wrapping [ErrNoAnswer]; bytes that are not a frame are counted
// and skipped.
package lora
