#pragma once
// Offers and answers shaped like those of real user agents (addresses from documentation and
// private ranges, keys and fingerprints made up). Shared by the SDP parser and rewriter tests;
// tests/fuzz/corpus/sdp_fuzz/ holds copies as seeds.

namespace latchkey::control::sdp::samples {

// Yealink T46U behind NAT: G.722 first, G.711, G.729 and telephone-event; session-level c=.
inline constexpr char kYealinkOffer[] =
    "v=0\r\n"
    "o=- 20045 20045 IN IP4 192.168.1.101\r\n"
    "s=SDP data\r\n"
    "c=IN IP4 192.168.1.101\r\n"
    "t=0 0\r\n"
    "m=audio 11780 RTP/AVP 9 0 8 18 101\r\n"
    "a=rtpmap:9 G722/8000\r\n"
    "a=rtpmap:0 PCMU/8000\r\n"
    "a=rtpmap:8 PCMA/8000\r\n"
    "a=rtpmap:18 G729/8000\r\n"
    "a=fmtp:18 annexb=no\r\n"
    "a=ptime:20\r\n"
    "a=sendrecv\r\n"
    "a=rtpmap:101 telephone-event/8000\r\n"
    "a=fmtp:101 0-15\r\n";

// The same phone putting the call on hold (re-INVITE, version bumped, a=sendonly).
inline constexpr char kYealinkHoldReinvite[] =
    "v=0\r\n"
    "o=- 20045 20046 IN IP4 192.168.1.101\r\n"
    "s=SDP data\r\n"
    "c=IN IP4 192.168.1.101\r\n"
    "t=0 0\r\n"
    "m=audio 11780 RTP/AVP 9 101\r\n"
    "a=rtpmap:9 G722/8000\r\n"
    "a=ptime:20\r\n"
    "a=sendonly\r\n"
    "a=rtpmap:101 telephone-event/8000\r\n"
    "a=fmtp:101 0-15\r\n";

// Polycom VVX 450 with SDES-SRTP; the direction attribute is session-level.
inline constexpr char kPolycomSrtpOffer[] =
    "v=0\r\n"
    "o=- 1608235282 1608235282 IN IP4 10.0.0.45\r\n"
    "s=Polycom IP Phone\r\n"
    "c=IN IP4 10.0.0.45\r\n"
    "t=0 0\r\n"
    "a=sendrecv\r\n"
    "m=audio 2222 RTP/SAVP 9 0 8 18 127\r\n"
    "a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:Q2hhbmdlIHRoaXMga2V5IGJlZm9yZSBzaGlwcGluZyE=|2^31\r\n"
    "a=crypto:2 AES_CM_128_HMAC_SHA1_32 inline:Tm90IGEgcmVhbCBrZXksIGp1c3QgYSBzYW1wbGUuLi4=|2^31\r\n"
    "a=rtpmap:9 G722/8000\r\n"
    "a=rtpmap:0 PCMU/8000\r\n"
    "a=rtpmap:8 PCMA/8000\r\n"
    "a=rtpmap:18 G729/8000\r\n"
    "a=fmtp:18 annexb=no\r\n"
    "a=rtpmap:127 telephone-event/8000\r\n";

// Grandstream GXP2170.
inline constexpr char kGrandstreamOffer[] =
    "v=0\r\n"
    "o=1001 8000 8000 IN IP4 192.168.0.160\r\n"
    "s=SIP Call\r\n"
    "c=IN IP4 192.168.0.160\r\n"
    "t=0 0\r\n"
    "m=audio 5004 RTP/AVP 0 8 4 18 9 97 2 123 101\r\n"
    "a=rtpmap:0 PCMU/8000\r\n"
    "a=rtpmap:8 PCMA/8000\r\n"
    "a=rtpmap:4 G723/8000\r\n"
    "a=rtpmap:18 G729/8000\r\n"
    "a=rtpmap:9 G722/8000\r\n"
    "a=rtpmap:97 iLBC/8000\r\n"
    "a=fmtp:97 mode=20\r\n"
    "a=rtpmap:2 G726-32/8000\r\n"
    "a=rtpmap:123 opus/48000/2\r\n"
    "a=fmtp:123 maxplaybackrate=16000; sprop-maxcapturerate=16000; maxaveragebitrate=12000\r\n"
    "a=rtpmap:101 telephone-event/8000\r\n"
    "a=fmtp:101 0-15\r\n"
    "a=ptime:20\r\n"
    "a=sendrecv\r\n";

// Linphone desktop with ICE: session-level credentials, host and srflx candidates for RTP and
// RTCP, rtcp-mux offered with an a=rtcp fallback port.
inline constexpr char kLinphoneIceOffer[] =
    "v=0\r\n"
    "o=alice 3058 2361 IN IP4 192.168.1.23\r\n"
    "s=Talk\r\n"
    "c=IN IP4 192.168.1.23\r\n"
    "t=0 0\r\n"
    "a=ice-pwd:9a2f0b3c7d5e81f4c6b2a913\r\n"
    "a=ice-ufrag:4f1c2e9a\r\n"
    "a=rtcp-xr:rcvr-rtt=all:10000 stat-summary=loss,dup,jitt,TTL voip-metrics\r\n"
    "m=audio 7078 RTP/AVP 96 97 0 8 101\r\n"
    "a=rtpmap:96 opus/48000/2\r\n"
    "a=fmtp:96 useinbandfec=1\r\n"
    "a=rtpmap:97 speex/16000\r\n"
    "a=fmtp:97 vbr=on\r\n"
    "a=rtpmap:101 telephone-event/8000\r\n"
    "a=rtcp:7079\r\n"
    "a=rtcp-mux\r\n"
    "a=candidate:1 1 UDP 2130706303 192.168.1.23 7078 typ host\r\n"
    "a=candidate:1 2 UDP 2130706302 192.168.1.23 7079 typ host\r\n"
    "a=candidate:2 1 UDP 1694498687 198.51.100.23 36210 typ srflx raddr 192.168.1.23 rport 7078\r\n"
    "a=candidate:2 2 UDP 1694498686 198.51.100.23 36211 typ srflx raddr 192.168.1.23 rport 7079\r\n"
    "a=rtcp-fb:* trr-int 1000\r\n"
    "a=rtcp-fb:* ccm tmmbr\r\n";

// Zoiper 5: Opus with two telephone-event clocks, rtcp-mux.
inline constexpr char kZoiperOffer[] =
    "v=0\r\n"
    "o=Z 1700000000123 1 IN IP4 192.168.2.50\r\n"
    "s=Z\r\n"
    "c=IN IP4 192.168.2.50\r\n"
    "t=0 0\r\n"
    "m=audio 8000 RTP/AVP 106 9 98 101 0 8 3\r\n"
    "a=rtpmap:106 opus/48000/2\r\n"
    "a=fmtp:106 sprop-maxcapturerate=16000; minptime=20; useinbandfec=1\r\n"
    "a=rtpmap:98 telephone-event/48000\r\n"
    "a=fmtp:98 0-16\r\n"
    "a=rtpmap:101 telephone-event/8000\r\n"
    "a=fmtp:101 0-16\r\n"
    "a=sendrecv\r\n"
    "a=rtcp-mux\r\n";

// Cisco SPA504G.
inline constexpr char kCiscoSpaOffer[] =
    "v=0\r\n"
    "o=- 13571 13571 IN IP4 192.168.10.20\r\n"
    "s=-\r\n"
    "c=IN IP4 192.168.10.20\r\n"
    "t=0 0\r\n"
    "m=audio 16450 RTP/AVP 0 2 8 18 101\r\n"
    "a=rtpmap:0 PCMU/8000\r\n"
    "a=rtpmap:2 G726-32/8000\r\n"
    "a=rtpmap:8 PCMA/8000\r\n"
    "a=rtpmap:18 G729a/8000\r\n"
    "a=fmtp:101 0-15\r\n"
    "a=rtpmap:101 telephone-event/8000\r\n"
    "a=ptime:20\r\n"
    "a=sendrecv\r\n";

// Asterisk (chan_pjsip) offer towards a phone.
inline constexpr char kAsteriskOffer[] =
    "v=0\r\n"
    "o=- 1977433702 1977433702 IN IP4 203.0.113.50\r\n"
    "s=Asterisk\r\n"
    "c=IN IP4 203.0.113.50\r\n"
    "t=0 0\r\n"
    "m=audio 17228 RTP/AVP 0 8 9 101\r\n"
    "a=rtpmap:0 PCMU/8000\r\n"
    "a=rtpmap:8 PCMA/8000\r\n"
    "a=rtpmap:9 G722/8000\r\n"
    "a=rtpmap:101 telephone-event/8000\r\n"
    "a=fmtp:101 0-16\r\n"
    "a=ptime:20\r\n"
    "a=maxptime:150\r\n"
    "a=sendrecv\r\n";

// FreeSWITCH answer: a=rtcp with an explicit address.
inline constexpr char kFreeswitchAnswer[] =
    "v=0\r\n"
    "o=FreeSWITCH 1700003412 1700003413 IN IP4 198.51.100.7\r\n"
    "s=FreeSWITCH\r\n"
    "c=IN IP4 198.51.100.7\r\n"
    "t=0 0\r\n"
    "m=audio 24578 RTP/AVP 0 101\r\n"
    "a=rtpmap:0 PCMU/8000\r\n"
    "a=rtpmap:101 telephone-event/8000\r\n"
    "a=fmtp:101 0-16\r\n"
    "a=ptime:20\r\n"
    "a=sendrecv\r\n"
    "a=rtcp:24579 IN IP4 198.51.100.7\r\n";

// Chrome via a SIP-over-WebSocket library after ICE gathering: BUNDLE, rtcp-mux, DTLS fingerprint,
// several candidates, media-level c= only, audio and video.
inline constexpr char kChromeWebrtcOffer[] =
    "v=0\r\n"
    "o=- 4611731400430051336 2 IN IP4 127.0.0.1\r\n"
    "s=-\r\n"
    "t=0 0\r\n"
    "a=group:BUNDLE 0 1\r\n"
    "a=extmap-allow-mixed\r\n"
    "a=msid-semantic: WMS 5a4b8f7e-6c1d-4e2f-9a3b-7c8d9e0f1a2b\r\n"
    "m=audio 54321 UDP/TLS/RTP/SAVPF 111 63 9 0 8 13 110 126\r\n"
    "c=IN IP4 198.51.100.77\r\n"
    "a=rtcp:9 IN IP4 0.0.0.0\r\n"
    "a=candidate:2999745851 1 udp 2122260223 192.168.56.1 54321 typ host generation 0 network-id 1\r\n"
    "a=candidate:1606961068 1 udp 2122194687 10.0.2.15 54322 typ host generation 0 network-id 2\r\n"
    "a=candidate:842163049 1 udp 1686052607 198.51.100.77 54321 typ srflx raddr 192.168.56.1 rport 54321 generation 0 network-id 1\r\n"
    "a=candidate:4233069003 1 tcp 1518280447 192.168.56.1 9 typ host tcptype active generation 0 network-id 1\r\n"
    "a=ice-ufrag:Oq5x\r\n"
    "a=ice-pwd:8vXG3pYy4c1wQnL0kJ9fR2aT\r\n"
    "a=ice-options:trickle\r\n"
    "a=fingerprint:sha-256 7B:8B:F0:65:5F:78:E2:51:3B:AC:6F:F3:3F:46:1B:35:DC:B8:5F:64:1A:24:C2:43:F0:A1:58:D0:A1:2C:19:08\r\n"
    "a=setup:actpass\r\n"
    "a=mid:0\r\n"
    "a=extmap:1 urn:ietf:params:rtp-hdrext:ssrc-audio-level\r\n"
    "a=extmap:2 http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time\r\n"
    "a=sendrecv\r\n"
    "a=msid:5a4b8f7e-6c1d-4e2f-9a3b-7c8d9e0f1a2b 0b9e2c1d-3f4a-4b5c-8d6e-7f8a9b0c1d2e\r\n"
    "a=rtcp-mux\r\n"
    "a=rtpmap:111 opus/48000/2\r\n"
    "a=rtcp-fb:111 transport-cc\r\n"
    "a=fmtp:111 minptime=10;useinbandfec=1\r\n"
    "a=rtpmap:63 red/48000/2\r\n"
    "a=fmtp:63 111/111\r\n"
    "a=rtpmap:9 G722/8000\r\n"
    "a=rtpmap:0 PCMU/8000\r\n"
    "a=rtpmap:8 PCMA/8000\r\n"
    "a=rtpmap:13 CN/8000\r\n"
    "a=rtpmap:110 telephone-event/48000\r\n"
    "a=rtpmap:126 telephone-event/8000\r\n"
    "a=ssrc:3735928559 cname:Yq3sF1x0kPZbLw7e\r\n"
    "a=ssrc:3735928559 msid:5a4b8f7e-6c1d-4e2f-9a3b-7c8d9e0f1a2b 0b9e2c1d-3f4a-4b5c-8d6e-7f8a9b0c1d2e\r\n"
    "m=video 54321 UDP/TLS/RTP/SAVPF 96 97 102 103\r\n"
    "c=IN IP4 198.51.100.77\r\n"
    "a=rtcp:9 IN IP4 0.0.0.0\r\n"
    "a=candidate:2999745851 1 udp 2122260223 192.168.56.1 54321 typ host generation 0 network-id 1\r\n"
    "a=candidate:842163049 1 udp 1686052607 198.51.100.77 54321 typ srflx raddr 192.168.56.1 rport 54321 generation 0 network-id 1\r\n"
    "a=ice-ufrag:Oq5x\r\n"
    "a=ice-pwd:8vXG3pYy4c1wQnL0kJ9fR2aT\r\n"
    "a=ice-options:trickle\r\n"
    "a=fingerprint:sha-256 7B:8B:F0:65:5F:78:E2:51:3B:AC:6F:F3:3F:46:1B:35:DC:B8:5F:64:1A:24:C2:43:F0:A1:58:D0:A1:2C:19:08\r\n"
    "a=setup:actpass\r\n"
    "a=mid:1\r\n"
    "a=sendrecv\r\n"
    "a=rtcp-mux\r\n"
    "a=rtcp-rsize\r\n"
    "a=rtpmap:96 VP8/90000\r\n"
    "a=rtcp-fb:96 goog-remb\r\n"
    "a=rtcp-fb:96 nack\r\n"
    "a=rtcp-fb:96 nack pli\r\n"
    "a=rtpmap:97 rtx/90000\r\n"
    "a=fmtp:97 apt=96\r\n"
    "a=rtpmap:102 H264/90000\r\n"
    "a=fmtp:102 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42001f\r\n"
    "a=rtpmap:103 rtx/90000\r\n"
    "a=fmtp:103 apt=102\r\n"
    "a=ssrc-group:FID 2882400001 2882400002\r\n"
    "a=ssrc:2882400001 cname:Yq3sF1x0kPZbLw7e\r\n"
    "a=ssrc:2882400002 cname:Yq3sF1x0kPZbLw7e\r\n";

// Yealink T58W video call: audio and video, b= on the video stream.
inline constexpr char kAudioVideoOffer[] =
    "v=0\r\n"
    "o=- 38990 38990 IN IP4 192.168.1.80\r\n"
    "s=SDP data\r\n"
    "c=IN IP4 192.168.1.80\r\n"
    "t=0 0\r\n"
    "m=audio 11796 RTP/AVP 9 0 8 101\r\n"
    "a=rtpmap:9 G722/8000\r\n"
    "a=rtpmap:0 PCMU/8000\r\n"
    "a=rtpmap:8 PCMA/8000\r\n"
    "a=rtpmap:101 telephone-event/8000\r\n"
    "a=fmtp:101 0-15\r\n"
    "a=ptime:20\r\n"
    "a=sendrecv\r\n"
    "m=video 11798 RTP/AVP 99\r\n"
    "b=AS:2048\r\n"
    "a=rtpmap:99 H264/90000\r\n"
    "a=fmtp:99 profile-level-id=42801F; packetization-mode=1\r\n"
    "a=sendrecv\r\n";

// Asterisk's answer to kAudioVideoOffer: audio accepted, video rejected with port 0.
inline constexpr char kRejectedVideoAnswer[] =
    "v=0\r\n"
    "o=- 1977433702 1977433703 IN IP4 203.0.113.50\r\n"
    "s=Asterisk\r\n"
    "c=IN IP4 203.0.113.50\r\n"
    "t=0 0\r\n"
    "m=audio 17230 RTP/AVP 9 101\r\n"
    "a=rtpmap:9 G722/8000\r\n"
    "a=rtpmap:101 telephone-event/8000\r\n"
    "a=fmtp:101 0-16\r\n"
    "a=ptime:20\r\n"
    "a=maxptime:150\r\n"
    "a=sendrecv\r\n"
    "m=video 0 RTP/AVP 99\r\n"
    "a=inactive\r\n";

// Snom D785 on an IPv6-only network.
inline constexpr char kIpv6Offer[] =
    "v=0\r\n"
    "o=root 1280193536 1280193536 IN IP6 2001:db8:85a3::8a2e:370:7334\r\n"
    "s=call\r\n"
    "c=IN IP6 2001:db8:85a3::8a2e:370:7334\r\n"
    "t=0 0\r\n"
    "m=audio 63874 RTP/AVP 9 8 0 3 101\r\n"
    "a=rtpmap:9 G722/8000\r\n"
    "a=rtpmap:8 PCMA/8000\r\n"
    "a=rtpmap:0 PCMU/8000\r\n"
    "a=rtpmap:3 GSM/8000\r\n"
    "a=rtpmap:101 telephone-event/8000\r\n"
    "a=fmtp:101 0-15\r\n"
    "a=ptime:20\r\n"
    "a=sendrecv\r\n";

// Cisco IOS gateway putting the call on hold the RFC 2543 way: zero address at both levels.
inline constexpr char kZeroAddressHold[] =
    "v=0\r\n"
    "o=CiscoSystemsSIP-GW-UserAgent 4188 2740 IN IP4 192.0.2.14\r\n"
    "s=SIP Call\r\n"
    "c=IN IP4 0.0.0.0\r\n"
    "t=0 0\r\n"
    "m=audio 18574 RTP/AVP 0 101\r\n"
    "c=IN IP4 0.0.0.0\r\n"
    "a=rtpmap:0 PCMU/8000\r\n"
    "a=rtpmap:101 telephone-event/8000\r\n"
    "a=fmtp:101 0-16\r\n"
    "a=ptime:20\r\n";

// A trunk SBC that puts c= only in the media section.
inline constexpr char kMediaLevelConnectionOnly[] =
    "v=0\r\n"
    "o=SBC 8730 8731 IN IP4 192.0.2.33\r\n"
    "s=SBC\r\n"
    "t=0 0\r\n"
    "m=audio 30000 RTP/AVP 8 0 101\r\n"
    "c=IN IP4 192.0.2.33\r\n"
    "a=rtpmap:8 PCMA/8000\r\n"
    "a=rtpmap:0 PCMU/8000\r\n"
    "a=rtpmap:101 telephone-event/8000\r\n"
    "a=fmtp:101 0-15\r\n";

// A softphone that sends LF-only line endings (and no terminator on the last line).
inline constexpr char kLfOnlyOffer[] =
    "v=0\n"
    "o=jitsi 0 0 IN IP4 192.168.178.30\n"
    "s=-\n"
    "c=IN IP4 192.168.178.30\n"
    "t=0 0\n"
    "m=audio 5000 RTP/AVP 96 9 0 8 101\n"
    "a=rtpmap:96 opus/48000/2\n"
    "a=fmtp:96 usedtx=1\n"
    "a=rtpmap:101 telephone-event/8000\n"
    "a=sendrecv";

// No c= line at all (invalid per RFC 4566, seen from a broken gateway) and an i= after m=.
inline constexpr char kNoConnectionWithInfo[] =
    "v=0\r\n"
    "o=gw 1 1 IN IP4 192.0.2.90\r\n"
    "s=-\r\n"
    "t=0 0\r\n"
    "m=audio 20000 RTP/AVP 0\r\n"
    "i=main audio\r\n"
    "a=rtpmap:0 PCMU/8000\r\n";

}  // namespace latchkey::control::sdp::samples
