//! base256emoji: each byte is one emoji of the spec's table
//! (multiformats/multibase, rfcs/Base256Emoji.md).

/// The spec's 256 emoji, byte 0 first.
const ALPHABET: &str = "🚀🪐☄🛰🌌🌑🌒🌓🌔🌕🌖🌗🌘🌍🌏🌎🐉☀💻🖥💾💿😂❤😍🤣😊🙏💕😭😘👍😅👏😁🔥🥰💔💖💙😢🤔😆🙄💪😉☺👌🤗💜😔😎😇🌹🤦🎉💞✌✨🤷😱😌🌸🙌😋💗💚😏💛🙂💓🤩😄😀🖤😃💯🙈👇🎶😒🤭❣😜💋👀😪😑💥🙋😞😩😡🤪👊🥳😥🤤👉💃😳✋😚😝😴🌟😬🙃🍀🌷😻😓⭐✅🥺🌈😈🤘💦✔😣🏃💐☹🎊💘😠☝😕🌺🎂🌻😐🖕💝🙊😹🗣💫💀👑🎵🤞😛🔴😤🌼😫⚽🤙☕🏆🤫👈😮🙆🍻🍃🐶💁😲🌿🧡🎁⚡🌞🎈❌✊👋😰🤨😶🤝🚶💰🍓💢🤟🙁🚨💨🤬✈🎀🍺🤓😙💟🌱😖👶🥴▶➡❓💎💸⬇😨🌚🦋😷🕺⚠🙅😟😵👎🤲🤠🤧📌🔵💅🧐🐾🍒😗🤑🌊🤯🐷☎💧😯💆👆🎤🙇🍑❄🌴💣🐸💌📍🥀🤢👅💡💩👐📸👻🤐🤮🎼🥵🚩🍎🍊👼💍📣🥂";

pub(crate) fn encode(input: &[u8]) -> String {
    let table: Vec<char> = ALPHABET.chars().collect();
    input.iter().map(|&byte| table[usize::from(byte)]).collect()
}

pub(crate) fn decode(input: &str) -> Option<Vec<u8>> {
    input
        .chars()
        .map(|symbol| ALPHABET.chars().position(|e| e == symbol).map(|i| i as u8))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::ALPHABET;

    #[test]
    fn the_table_has_256_distinct_emoji() {
        let mut table: Vec<char> = ALPHABET.chars().collect();
        assert_eq!(table.len(), 256, "the spec's table has one emoji a byte");
        table.sort_unstable();
        table.dedup();
        assert_eq!(table.len(), 256, "an emoji appears twice in the table");
    }
}
