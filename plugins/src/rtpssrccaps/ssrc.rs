//! Where the SSRC sits in a packet, by media type: (S)RTP carries it at bytes 8..12 of its fixed
//! header (RFC 3550 §5.1), (S)RTCP, as the sender's SSRC of the first packet of a compound
//! packet, at bytes 4..8 (§6.4). SRTP and SRTCP encrypt neither (RFC 3711 §3.1, §3.4).

/// The media types the element accepts, and whether each is RTCP.
pub const MEDIA_TYPES: [(&str, bool); 4] = [
    ("application/x-srtp", false),
    ("application/x-srtcp", true),
    ("application/x-rtp", false),
    ("application/x-rtcp", true),
];

/// Whether `media_type` is one of [`MEDIA_TYPES`] carrying RTCP; `None` for any other type.
pub fn is_rtcp(media_type: &str) -> Option<bool> {
    MEDIA_TYPES
        .iter()
        .find(|(name, _)| *name == media_type)
        .map(|&(_, rtcp)| rtcp)
}

/// The SSRC of an RTP (`rtcp` false) or RTCP packet: `None` when the packet is too short or
/// its version is not 2.
pub fn packet_ssrc(data: &[u8], rtcp: bool) -> Option<u32> {
    let at = if rtcp { 4 } else { 8 };
    let first = *data.first()?;
    if first >> 6 != 2 {
        return None;
    }
    let bytes: [u8; 4] = data.get(at..at + 4)?.try_into().ok()?;
    Some(u32::from_be_bytes(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rtp_and_rtcp_ssrcs_are_read_where_their_headers_put_them() {
        // RTP: V=2, PT 96, seq 1, timestamp 0, SSRC 0x66_6d_61_70.
        let rtp = [0x80, 96, 0, 1, 0, 0, 0, 0, 0x66, 0x6d, 0x61, 0x70, 0xaa];
        assert_eq!(packet_ssrc(&rtp, false), Some(0x666d_6170));
        // RTCP receiver report: V=2, RC 0, PT 201, length 1, SSRC 0x01020304.
        let rtcp = [0x80, 201, 0, 1, 1, 2, 3, 4];
        assert_eq!(packet_ssrc(&rtcp, true), Some(0x0102_0304));
        // Read as RTP, the report is too short.
        assert_eq!(packet_ssrc(&rtcp, false), None);
    }

    #[test]
    fn short_packets_and_other_versions_have_no_ssrc() {
        assert_eq!(packet_ssrc(&[], true), None);
        assert_eq!(packet_ssrc(&[0x80, 201, 0, 1, 1, 2, 3], true), None);
        assert_eq!(packet_ssrc(&[0x40, 201, 0, 1, 1, 2, 3, 4], true), None);
    }

    #[test]
    fn media_types_say_which_carry_rtcp() {
        assert_eq!(is_rtcp("application/x-srtcp"), Some(true));
        assert_eq!(is_rtcp("application/x-srtp"), Some(false));
        assert_eq!(is_rtcp("video/x-raw"), None);
    }
}
